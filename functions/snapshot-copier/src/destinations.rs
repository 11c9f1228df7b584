//! The selection tag's value: destination regions, comma separated, or
//! `true` for the configured defaults.

/// A region name as AWS spells them: `us-east-1`, `ap-southeast-2`,
/// `us-gov-west-1`, `eu-central-2`.
pub fn is_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let number = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [area, place, n] => area.len() == 2 && lower(area) && lower(place) && number(n),
        [area, partition, place, n] => {
            area.len() == 2 && lower(area) && lower(partition) && lower(place) && number(n)
        }
        _ => false,
    }
}

/// The destination regions a tag value asks for: trimmed, deduplicated,
/// in order, without the source region. Names the offending entry.
pub fn parse(value: &str, defaults: &[String], source_region: &str) -> Result<Vec<String>, String> {
    let value = value.trim();
    let names: Vec<String> = if value.eq_ignore_ascii_case("true") {
        if defaults.is_empty() {
            return Err("the tag value is true but DEFAULT_DESTINATIONS is empty".into());
        }
        defaults.to_vec()
    } else {
        value
            .split(',')
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect()
    };
    let mut regions: Vec<String> = Vec::new();
    for name in names {
        if !is_region(&name) {
            return Err(format!("{name:?} is not a region name"));
        }
        if name != source_region && !regions.contains(&name) {
            regions.push(name);
        }
    }
    if regions.is_empty() {
        return Err(format!(
            "{value:?} names no destination region other than {source_region}"
        ));
    }
    Ok(regions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_defaults_and_errors() {
        let defaults = vec!["eu-west-1".to_owned()];
        assert_eq!(
            parse(
                " us-west-2, EU-west-1,us-west-2 ,us-east-1",
                &defaults,
                "us-east-1"
            )
            .unwrap(),
            vec!["us-west-2", "eu-west-1"]
        );
        assert_eq!(
            parse("TRUE", &defaults, "us-east-1").unwrap(),
            vec!["eu-west-1"]
        );
        assert!(
            parse("true", &[], "us-east-1")
                .unwrap_err()
                .contains("DEFAULT_DESTINATIONS")
        );
        assert!(
            parse("us-west-2;eu-west-1", &defaults, "us-east-1")
                .unwrap_err()
                .contains("not a region")
        );
        assert!(
            parse("us-east-1", &defaults, "us-east-1")
                .unwrap_err()
                .contains("no destination")
        );
        assert!(is_region("us-gov-west-1") && is_region("ap-southeast-2") && !is_region("mars-1"));
    }
}
