//! The SFTP view of the report directory: which client paths name the root,
//! which name the report, and which are outside. Decided on the text alone,
//! before any filesystem call, so a `..`, a symlink name or another file of
//! the state directory is never even looked up. Pure: no I/O.

/// What a client path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/`, `.`, `` (the report directory).
    Root,
    /// `/<file>` or `<file>` (the report).
    Report,
    /// Anything else: refused.
    Outside,
}

/// Classifies `path` for the report named `file` (a plain name, checked by
/// the offer parser). Empty and `.` components are dropped (`//x`, `/./x`
/// name the same thing and cannot climb out); a `..` component anywhere
/// makes the path outside, even where it would resolve back inside, so no
/// path that climbs is ever answered.
pub fn classify(path: &str, file: Option<&str>) -> Target {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Target::Outside,
            name => parts.push(name),
        }
    }
    match parts.as_slice() {
        [] => Target::Root,
        [name] if Some(*name) == file => Target::Report,
        _ => Target::Outside,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Option<&str> = Some("report-2024.tar.age");

    #[test]
    fn the_root() {
        for p in ["/", ".", "", "//", "/.", "./", "/./."] {
            assert_eq!(classify(p, F), Target::Root, "{p:?}");
        }
    }

    #[test]
    fn the_report() {
        for p in [
            "/report-2024.tar.age",
            "report-2024.tar.age",
            "./report-2024.tar.age",
            "//report-2024.tar.age/",
        ] {
            assert_eq!(classify(p, F), Target::Report, "{p:?}");
        }
    }

    #[test]
    fn climbing_is_outside_even_when_it_comes_back() {
        for p in [
            "..",
            "/..",
            "../settings.json",
            "/../offer.json",
            "/report-2024.tar.age/..",
            "/../sftp/report/report-2024.tar.age",
            "x/../report-2024.tar.age",
            "/./../",
        ] {
            assert_eq!(classify(p, F), Target::Outside, "{p:?}");
        }
    }

    #[test]
    fn other_names_are_outside() {
        for p in [
            "/offer.json",
            "host_key",
            "/report-2024.tar.age/x",
            "/report",
            "/report-2024.tar.age\0",
            "/REPORT-2024.TAR.AGE",
            "\\..\\offer.json",
            "...",
        ] {
            assert_eq!(classify(p, F), Target::Outside, "{p:?}");
        }
    }

    #[test]
    fn without_a_report_only_the_root_exists() {
        assert_eq!(classify("/", None), Target::Root);
        assert_eq!(classify("/report-2024.tar.age", None), Target::Outside);
    }
}
