//! docs/configuration.md lists every key with its type, default and rule,
//! exactly as the code states them. The table is generated from [`KEYS`]:
//! `UPDATE_DOCS=1 cargo test -p gateway-config --test docs` rewrites it.

use gateway_config::KEYS;

const BEGIN: &str = "<!-- keys:begin (generated from lib/config/src/keys.rs) -->\n";
const END: &str = "<!-- keys:end -->\n";

fn table() -> String {
    let mut t = String::from("| Key | Type | Default | Rule |\n|---|---|---|---|\n");
    for k in KEYS {
        let default = k.default_text();
        let default = if default.is_empty() {
            "(unset)".to_owned()
        } else {
            format!("`{default}`")
        };
        t += &format!(
            "| `{}` | {} | {} | {} |\n",
            k.name,
            k.kind.replace('|', "\\|"),
            default,
            k.rule.replace('|', "\\|")
        );
    }
    t
}

#[test]
fn the_configuration_doc_lists_every_key_as_the_code_does() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
    let doc = std::fs::read_to_string(path).expect("docs/configuration.md");
    let (head, rest) = doc.split_once(BEGIN).expect("begin marker");
    let (_, tail) = rest.split_once(END).expect("end marker");
    let expected = format!("{head}{BEGIN}{}{END}{tail}", table());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &expected).unwrap();
        return;
    }
    assert!(doc == expected, "docs/configuration.md is out of date: run UPDATE_DOCS=1 cargo test -p gateway-config --test docs");
}
