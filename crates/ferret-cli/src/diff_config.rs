//! The `ferret diff --config` TOML file: gate defaults, per-name rules and
//! exclusions.
//!
//! ```toml
//! threshold = "10%"        # or 0.1
//! min_abs = "50us"
//! alpha = 0.05
//! fail_on_new = false
//! fail_on_gone = false
//! exclude = ["tail", "risky_*"]
//!
//! [[rule]]
//! name = "db.*"            # glob over the name (or ;-joined path)
//! threshold = "25%"
//! min_abs = "1ms"
//! ```

use ferret_analyze::analysis::diff::NameRule;
use serde::Deserialize;
use std::path::Path;

/// A percentage string ("10%") or a fraction (0.1).
#[derive(Deserialize)]
#[serde(untagged)]
enum Ratio {
    Text(String),
    Number(f64),
}

/// A duration string ("50us") or ns as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Dur {
    Text(String),
    Number(f64),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    threshold: Option<Ratio>,
    min_abs: Option<Dur>,
    #[serde(default)]
    exclude: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    threshold: Option<Ratio>,
    min_abs: Option<Dur>,
    alpha: Option<f64>,
    #[serde(default)]
    fail_on_new: bool,
    #[serde(default)]
    fail_on_gone: bool,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

/// The parsed file.
#[derive(Debug, Default)]
pub struct Config {
    pub threshold: Option<f64>,
    pub min_abs_ns: Option<f64>,
    pub alpha: Option<f64>,
    pub fail_on_new: bool,
    pub fail_on_gone: bool,
    /// Exclusions first, then the rules in file order.
    pub rules: Vec<NameRule>,
}

fn ratio(r: Ratio) -> Result<f64, String> {
    match r {
        Ratio::Text(s) => crate::cmd::diff::parse_threshold(&s),
        Ratio::Number(v) => crate::cmd::diff::parse_threshold(&v.to_string()),
    }
}

fn dur(d: Dur) -> Result<f64, String> {
    match d {
        Dur::Text(s) => crate::cmd::diff::parse_min_abs(&s),
        Dur::Number(v) if v >= 0.0 && v.is_finite() => Ok(v),
        Dur::Number(v) => Err(format!("bad min_abs {v}")),
    }
}

impl Config {
    /// Reads and checks a config file; the error names the file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read config: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the TOML text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let raw: Raw = toml::from_str(text).map_err(|e| format!("bad config: {e}"))?;
        let mut rules: Vec<NameRule> = raw
            .exclude
            .into_iter()
            .map(|pattern| NameRule {
                pattern,
                exclude: true,
                ..NameRule::default()
            })
            .collect();
        for r in raw.rule {
            rules.push(NameRule {
                pattern: r.name,
                threshold: r.threshold.map(ratio).transpose()?,
                min_abs_ns: r.min_abs.map(dur).transpose()?,
                exclude: r.exclude,
            });
        }
        Ok(Config {
            threshold: raw.threshold.map(ratio).transpose()?,
            min_abs_ns: raw.min_abs.map(dur).transpose()?,
            alpha: raw.alpha,
            fail_on_new: raw.fail_on_new,
            fail_on_gone: raw.fail_on_gone,
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let c = Config::parse(
            r#"
threshold = "15%"
min_abs = "1ms"
alpha = 0.01
fail_on_new = true
exclude = ["tail", "risky_*"]

[[rule]]
name = "db.*"
threshold = 0.25
min_abs = "2ms"

[[rule]]
name = "noise"
exclude = true
"#,
        )
        .unwrap();
        assert_eq!(c.threshold, Some(0.15));
        assert_eq!(c.min_abs_ns, Some(1e6));
        assert_eq!(c.alpha, Some(0.01));
        assert!(c.fail_on_new && !c.fail_on_gone);
        assert_eq!(c.rules.len(), 4);
        assert!(c.rules[0].exclude && c.rules[0].pattern == "tail");
        assert_eq!(c.rules[2].threshold, Some(0.25));
        assert_eq!(c.rules[2].min_abs_ns, Some(2e6));
        assert!(c.rules[3].exclude);
    }

    #[test]
    fn rejects_bad_files() {
        assert!(Config::parse("threshold = \"ten\"").is_err());
        assert!(Config::parse("treshold = \"10%\"")
            .unwrap_err()
            .contains("treshold"));
        assert!(Config::parse("[[rule]]\nthreshold = 0.1").is_err());
        assert!(Config::parse("min_abs = \"fast\"").is_err());
        assert!(Config::parse("threshold = 5").is_err());
    }
}
