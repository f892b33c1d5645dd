//! The query protocol's parameters: `Name=value` pairs, lists as `Prefix.member.N`
//! (counting from 1) and structures as `Prefix.Member`.

use std::collections::BTreeMap;

use crate::protocol::AwsError;

/// Parameters, or the members of one structure among them.
#[derive(Debug, Default, Clone)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    pub fn new(pairs: &[(String, String)]) -> Self {
        Self {
            map: pairs.iter().cloned().collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    pub fn req(&self, name: &str) -> Result<&str, AwsError> {
        self.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            AwsError::new("ValidationError", format!("{name}: required, and missing"))
        })
    }

    /// An integer member, or `ValidationError` naming it.
    pub fn int(&self, name: &str) -> Result<Option<i64>, AwsError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    AwsError::new(
                        "ValidationError",
                        format!("{name}: must be an integer, got {v:?}"),
                    )
                })
            })
            .transpose()
    }

    /// A boolean member (`true`/`false`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(AwsError::new(
                "ValidationError",
                format!("{name}: must be true or false, got {v:?}"),
            )),
        }
    }

    /// Whether any parameter lies under `prefix` (the member was given, maybe empty).
    pub fn has(&self, prefix: &str) -> bool {
        self.map
            .keys()
            .any(|k| k == prefix || k.starts_with(&format!("{prefix}.")))
    }

    /// The members of structure `prefix`.
    pub fn sub(&self, prefix: &str) -> Params {
        let p = format!("{prefix}.");
        Params {
            map: self
                .map
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&p).map(|r| (r.to_string(), v.clone())))
                .collect(),
        }
    }

    /// The scalar list `prefix.member.N`, in order of N.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let p = format!("{prefix}.member.");
        let mut items: Vec<(u32, String)> = self
            .map
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&p)?.parse().ok()?, v.clone())))
            .collect();
        items.sort_by_key(|i| i.0);
        items.into_iter().map(|i| i.1).collect()
    }

    /// The structure list `prefix.member.N.*`, in order of N.
    pub fn structs(&self, prefix: &str) -> Vec<Params> {
        let p = format!("{prefix}.member.");
        let mut by_n: BTreeMap<u32, Params> = BTreeMap::new();
        for (k, v) in &self.map {
            let Some(rest) = k.strip_prefix(&p) else {
                continue;
            };
            let Some((n, member)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            by_n.entry(n)
                .or_default()
                .map
                .insert(member.to_string(), v.clone());
        }
        by_n.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_structures_are_read_in_order() {
        let pairs: Vec<(String, String)> = [
            ("Names.member.2", "b"),
            ("Names.member.1", "a"),
            ("Targets.member.1.Id", "10.0.0.1"),
            ("Targets.member.1.Port", "80"),
            ("Targets.member.10.Id", "10.0.0.10"),
            ("Targets.member.2.Id", "10.0.0.2"),
            ("Matcher.HttpCode", "200"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = Params::new(&pairs);
        assert_eq!(p.list("Names"), vec!["a", "b"]);
        let t = p.structs("Targets");
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].int("Port").unwrap(), Some(80));
        assert_eq!(t[2].get("Id"), Some("10.0.0.10"));
        assert_eq!(p.sub("Matcher").get("HttpCode"), Some("200"));
        assert!(p.has("Matcher") && !p.has("Match"));
        let e = t[1].req("Port").unwrap_err();
        assert_eq!(e.code, "ValidationError");
    }
}
