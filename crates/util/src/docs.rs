//! Tables generated into the docs by tests: a section between
//! `<!-- name -->` and `<!-- /name -->` must hold what the code generates;
//! with `BALE_BLESS=1` the test writes it instead.

use std::path::Path;

/// Asserts that the section `name` of the file at `path` is `generated`,
/// or with `BALE_BLESS` set rewrites it; `bless` is the command that does
/// (named in the failure).
pub fn keep_section(path: &Path, name: &str, generated: &str, bless: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (start, end) = (format!("<!-- {name} -->\n"), format!("<!-- /{name} -->"));
    let a = text
        .find(&start)
        .unwrap_or_else(|| panic!("no {start:?} in {}", path.display()))
        + start.len();
    let b = text
        .find(&end)
        .unwrap_or_else(|| panic!("no {end:?} in {}", path.display()));
    if std::env::var_os("BALE_BLESS").is_some() {
        std::fs::write(path, format!("{}{}{}", &text[..a], generated, &text[b..])).unwrap();
        return;
    }
    assert_eq!(
        &text[a..b],
        generated,
        "{} is out of date: BALE_BLESS=1 {bless}",
        path.display()
    );
}
