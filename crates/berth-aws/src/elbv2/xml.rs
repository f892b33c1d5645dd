//! A small writer of the query protocol's XML answers, and ISO 8601 timestamps (the
//! query protocol's time format).

use crate::protocol::xml_escape;

/// An XML fragment built element by element.
#[derive(Default)]
pub struct Xml {
    out: String,
}

impl Xml {
    pub fn new() -> Self {
        Self::default()
    }

    /// `<name>text</name>`.
    pub fn el(&mut self, name: &str, text: impl std::fmt::Display) -> &mut Self {
        let t = xml_escape(&text.to_string());
        self.out.push_str(&format!("<{name}>{t}</{name}>"));
        self
    }

    /// `<name>text</name>` when there is a text.
    pub fn opt(&mut self, name: &str, text: Option<impl std::fmt::Display>) -> &mut Self {
        if let Some(t) = text {
            self.el(name, t);
        }
        self
    }

    /// Text inside the element being written (a scalar list's member).
    pub fn out_text(&mut self, text: &str) -> &mut Self {
        self.out.push_str(&xml_escape(text));
        self
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.out.push_str(&format!("<{name}>"));
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str(&format!("</{name}>"));
        self
    }

    /// `<name><member>..</member>...</name>`, one member per item written by `f`.
    pub fn members<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut f: impl FnMut(&mut Xml, T),
    ) -> &mut Self {
        self.open(name);
        for item in items {
            self.open("member");
            f(self, item);
            self.close("member");
        }
        self.close(name)
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The whole answer document of `action`: its result, then the request id.
pub fn document(action: &str, xmlns: &str, result: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{xmlns}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    )
}

/// Epoch seconds as ISO 8601 in UTC with milliseconds (`2026-11-30T10:00:00.000Z`).
pub fn iso8601(epoch: f64) -> String {
    let millis = (epoch * 1000.0).round() as i64;
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso_8601_in_utc() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400.5), "2000-02-29T00:00:00.500Z");
        assert_eq!(iso8601(1_796_032_800.0), "2026-11-30T10:00:00.000Z");
    }

    #[test]
    fn members_are_written_in_order() {
        let mut x = Xml::new();
        x.members("Names", ["a", "b<"], |x, n| {
            x.el("Name", n);
        });
        assert_eq!(
            x.finish(),
            "<Names><member><Name>a</Name></member><member><Name>b&lt;</Name></member></Names>"
        );
    }
}
