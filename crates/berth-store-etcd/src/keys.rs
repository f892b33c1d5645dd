//! Store keys to etcd keys and back: one prefix per store, prepended and stripped.
//!
//! What it does not do: check keys; any string is a store key.

#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    prefix: String,
}

impl Namespace {
    /// `prefix` is prepended verbatim (it ends with `/`, see `EtcdConfig::store_prefix`).
    pub(crate) fn new(prefix: String) -> Namespace {
        Namespace { prefix }
    }

    pub(crate) fn etcd_key(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// The store key of an etcd key under this namespace; `None` for any other key or
    /// one that is not UTF-8 (berth writes neither).
    pub(crate) fn store_key(&self, etcd_key: &[u8]) -> Option<String> {
        let rest = etcd_key.strip_prefix(self.prefix.as_bytes())?;
        String::from_utf8(rest.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_under_the_prefix() {
        let ns = Namespace::new("/berth/".into());
        assert_eq!(ns.etcd_key("/clusters/a"), b"/berth//clusters/a");
        assert_eq!(
            ns.store_key(b"/berth//clusters/a").as_deref(),
            Some("/clusters/a")
        );
        assert_eq!(ns.store_key(b"/berth/").as_deref(), Some(""));
        assert_eq!(ns.store_key(b"/berth2/x"), None);
        assert_eq!(ns.store_key(b"/berth.election/x"), None);
    }
}
