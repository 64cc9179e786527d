//! Reading a report.json back (`vramtrace diff` compares saved reports): the checks that tell a
//! report of this schema from other JSON, each failure one line.

use crate::report::{Report, SCHEMA_VERSION};
use crate::Error;

impl Report {
    /// Parses a report.json as `vramtrace report --json` writes it. Refuses a diff.json, a
    /// report of another schema version and JSON that is not a report, with a one-line
    /// [`Error::Report`] (the caller prefixes the file's name).
    pub fn from_json(bytes: &[u8]) -> Result<Report, Error> {
        let err = |m: String| Error::Report(m.replace('\n', " "));
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| err(format!("not valid JSON: {e}")))?;
        // The two fields every diff.json has and no report has.
        if v.get("threshold_bytes").is_some() && v.get("gate").is_some() {
            return Err(err("this is a diff.json; give a report.json or traces".into()));
        }
        match v.get("schema_version").and_then(|s| s.as_u64()) {
            Some(s) if s == SCHEMA_VERSION as u64 => {}
            Some(s) => return Err(err(format!("report schema version {s}; this vramtrace reads version {SCHEMA_VERSION}"))),
            None => return Err(err("not a vramtrace report.json (no schema_version)".into())),
        }
        serde_json::from_value(v).map_err(|e| err(format!("not a vramtrace report.json: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_line(r: Result<Report, Error>) -> String {
        let e = r.unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn reads_back_what_serde_writes() {
        let mut r = Report { schema_version: SCHEMA_VERSION, events: 42, ..Report::default() };
        r.warnings.push("w".into());
        let js = serde_json::to_string_pretty(&r).unwrap();
        assert_eq!(Report::from_json(js.as_bytes()).unwrap(), r);
    }

    #[test]
    fn refuses_what_is_not_a_report_of_this_schema() {
        assert!(one_line(Report::from_json(b"{ nope")).starts_with("not valid JSON: "));
        let diff = br#"{"schema_version": 1, "threshold_bytes": 1048576, "gate": {}}"#;
        assert!(one_line(Report::from_json(diff)).contains("this is a diff.json"));
        let e = one_line(Report::from_json(format!(r#"{{"schema_version": {}}}"#, SCHEMA_VERSION + 1).as_bytes()));
        assert!(e.contains(&format!("schema version {}", SCHEMA_VERSION + 1)) && e.contains(&format!("reads version {SCHEMA_VERSION}")), "{e}");
        assert!(one_line(Report::from_json(b"{\"events\": 3}")).contains("no schema_version"));
        let e = one_line(Report::from_json(format!(r#"{{"schema_version": {SCHEMA_VERSION}, "events": "many"}}"#).as_bytes()));
        assert!(e.starts_with("not a vramtrace report.json: "), "{e}");
    }
}
