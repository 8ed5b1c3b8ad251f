//! `schema.graphql` is the API reference; it must match the code and describe everything.

#[test]
fn schema_graphql_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let current = photon::graphql::sdl();
    assert!(
        committed == current,
        "schema.graphql is stale: run `cargo run -- export-schema` and commit the result"
    );
}

/// Types, fields, arguments and enum values of ours in the SDL that have no description.
fn undescribed(sdl: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let mut in_description = false;
    let mut described = false;
    let mut current_type: Option<String> = None;
    let mut current_field = String::new();
    for line in sdl.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("\"\"\"") {
            // A one-line `"""text"""` opens and closes; otherwise the line toggles.
            let one_line = trimmed.len() > 3 && trimmed.ends_with("\"\"\"");
            if !one_line {
                in_description = !in_description;
            }
            if !in_description {
                described = true;
            }
            continue;
        }
        if in_description {
            continue;
        }
        let is_type_start = ["type ", "input ", "interface ", "enum ", "union "]
            .iter()
            .any(|k| line.starts_with(k));
        if is_type_start {
            let name = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            // The connection plumbing is async-graphql's, not ours; the roots need no prose.
            let ours = !matches!(name.as_str(), "PageInfo" | "Query" | "Mutation")
                && !name.ends_with("Connection")
                && !name.ends_with("Edge");
            if ours && !described {
                missing.push(name.clone());
            }
            let checked = ours || matches!(name.as_str(), "Query" | "Mutation");
            current_type = checked.then_some(name);
        } else if line.starts_with('}') {
            current_type = None;
        } else if let Some(ty) = &current_type {
            if line.starts_with("\t\t") && !trimmed.starts_with(')') {
                let arg = trimmed.split(':').next().unwrap_or_default();
                if !described {
                    missing.push(format!("{ty}.{current_field}({arg})"));
                }
            } else if line.starts_with('\t') && !trimmed.starts_with(')') {
                let field = trimmed
                    .split(['(', ':'])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                if !described {
                    missing.push(format!("{ty}.{field}"));
                }
                // Arguments printed on the field's own line carry no description.
                if let Some((_, rest)) = trimmed.split_once('(') {
                    let inline = rest.split(')').next().unwrap_or_default().trim();
                    if !inline.is_empty() {
                        missing.push(format!("{ty}.{field}({inline})"));
                    }
                }
                current_field = field;
            }
        }
        described = false;
    }
    missing
}

#[test]
fn every_type_and_field_of_ours_is_described() {
    let missing = undescribed(&photon::graphql::sdl());
    assert!(missing.is_empty(), "add /// docs to: {missing:?}");
}
