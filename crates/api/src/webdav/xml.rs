//! The XML of WebDAV request bodies: parsed into a small tree with every
//! name resolved to its namespace, and property elements written back as
//! XML that declares every namespace it uses (so that a stored property
//! reads the same wherever it is placed).
//!
//! What is refused (400, RFC 4918 section 8.2 asks for well-formed XML
//! with namespaces): malformed XML, a prefix without a declaration, a
//! prefix declared with an empty URI (Namespaces in XML 1.0 forbids it), a
//! DOCTYPE (no entity expansion), a named entity other than XML's five,
//! nesting deeper than [`MAX_DEPTH`].

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// Deepest element nesting accepted.
pub(crate) const MAX_DEPTH: usize = 64;

pub(crate) const DAV: &str = "DAV:";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    pub ns: String,
    pub local: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Child {
    Element(Element),
    Text(String),
}

/// An element with its name resolved: `ns` is empty for no namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Element {
    pub ns: String,
    pub local: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Child>,
}

impl Element {
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns == ns && self.local == local
    }

    /// The child elements (text between them is ignored).
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Child::Element(e) => Some(e),
            Child::Text(_) => None,
        })
    }

    /// The text content (of this element alone).
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|c| match c {
                Child::Text(t) => Some(t.as_str()),
                Child::Element(_) => None,
            })
            .collect()
    }

    /// `{ns}local`, as messages name an element.
    pub fn clark(&self) -> String {
        format!("{{{}}}{}", self.ns, self.local)
    }
}

fn resolved(r: ResolveResult<'_>, qname: &[u8]) -> Result<String, String> {
    match r {
        ResolveResult::Bound(ns) => Ok(String::from_utf8_lossy(ns.into_inner()).into_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(format!(
            "the prefix {:?} of {:?} is not declared",
            String::from_utf8_lossy(&p),
            String::from_utf8_lossy(qname)
        )),
    }
}

/// Parses a document into its root element.
pub(crate) fn parse(xml: &[u8]) -> Result<Element, String> {
    let mut reader = NsReader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut buf = Vec::new();
    loop {
        let ev = reader.read_event_into(&mut buf).map_err(|e| e.to_string())?;
        let (start, empty) = match &ev {
            Event::Start(_) => (true, false),
            Event::Empty(_) => (true, true),
            _ => (false, false),
        };
        if start {
            let e = match &ev {
                Event::Start(e) | Event::Empty(e) => e,
                _ => unreachable!("a start tag"),
            };
            if root.is_some() {
                return Err("more than one root element".into());
            }
            if stack.len() >= MAX_DEPTH {
                return Err(format!("elements nested deeper than {MAX_DEPTH}"));
            }
            let qname = e.name();
            let (r, local) = reader.resolve_element(qname);
            let ns = resolved(r, qname.as_ref())?;
            let mut attrs = Vec::new();
            for a in e.attributes() {
                let a = a.map_err(|e| e.to_string())?;
                let key = a.key.as_ref();
                let value = a.unescape_value().map_err(|e| e.to_string())?.into_owned();
                if key == b"xmlns" {
                    continue;
                }
                if let Some(p) = key.strip_prefix(b"xmlns:") {
                    if value.is_empty() {
                        return Err(format!(
                            "the prefix {:?} is declared with an empty namespace, which Namespaces in XML 1.0 forbids",
                            String::from_utf8_lossy(p)
                        ));
                    }
                    continue;
                }
                let (r, alocal) = reader.resolve_attribute(a.key);
                attrs.push(Attr {
                    ns: resolved(r, key)?,
                    local: String::from_utf8_lossy(alocal.as_ref()).into_owned(),
                    value,
                });
            }
            let el = Element {
                ns,
                local: String::from_utf8_lossy(local.as_ref()).into_owned(),
                attrs,
                children: Vec::new(),
            };
            if empty {
                close(&mut stack, &mut root, el);
            } else {
                stack.push(el);
            }
            buf.clear();
            continue;
        }
        match ev {
            Event::End(_) => {
                let el = stack.pop().ok_or("an end tag without its start")?;
                close(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| e.to_string())?;
                text(&mut stack, &s)?;
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| e.to_string())?;
                text(&mut stack, &s)?;
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c,
                    None => match &r[..] {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        other => {
                            return Err(format!(
                                "the entity &{}; is not one of XML's own",
                                String::from_utf8_lossy(other)
                            ))
                        }
                    },
                };
                text(&mut stack, c.encode_utf8(&mut [0; 4]))?;
            }
            Event::DocType(_) => return Err("a DOCTYPE is not accepted".into()),
            Event::Eof => break,
            // The declaration, comments and processing instructions.
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(format!("<{}> is not closed", stack.last().expect("open").local));
    }
    root.ok_or_else(|| "no root element".into())
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Child::Element(el)),
        None => *root = Some(el),
    }
}

fn text(stack: &mut [Element], s: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some(el) => {
            match el.children.last_mut() {
                Some(Child::Text(t)) => t.push_str(s),
                _ => el.children.push(Child::Text(s.to_string())),
            }
            Ok(())
        }
        None if s.chars().all(char::is_whitespace) => Ok(()),
        None => Err("text outside the root element".into()),
    }
}

fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// An element as XML that declares its namespaces itself: the default
/// namespace where it differs from the parent's (`""` undeclares it), and
/// a prefix for each namespaced attribute. Text is kept byte for byte.
pub(crate) fn write(el: &Element, out: &mut String) {
    write_in(el, None, out)
}

fn write_in(el: &Element, parent_ns: Option<&str>, out: &mut String) {
    out.push('<');
    out.push_str(&el.local);
    if parent_ns != Some(el.ns.as_str()) {
        out.push_str(" xmlns=\"");
        escape_attr(&el.ns, out);
        out.push('"');
    }
    for (i, a) in el.attrs.iter().enumerate() {
        out.push(' ');
        if a.ns == XML_NS {
            out.push_str("xml:");
        } else if !a.ns.is_empty() {
            out.push_str(&format!("xmlns:a{i}=\""));
            escape_attr(&a.ns, out);
            out.push_str(&format!("\" a{i}:"));
        }
        out.push_str(&a.local);
        out.push_str("=\"");
        escape_attr(&a.value, out);
        out.push('"');
    }
    if el.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for c in &el.children {
        match c {
            Child::Text(t) => escape_text(t, out),
            Child::Element(e) => write_in(e, Some(&el.ns), out),
        }
    }
    out.push_str("</");
    out.push_str(&el.local);
    out.push('>');
}

/// An empty element of this name, declaring its namespace (propname
/// answers, property names in a PROPPATCH's answer).
pub(crate) fn empty(ns: &str, local: &str) -> String {
    let mut out = String::new();
    write(
        &Element {
            ns: ns.to_string(),
            local: local.to_string(),
            attrs: Vec::new(),
            children: Vec::new(),
        },
        &mut out,
    );
    out
}

/// A property's name without its value, in a multistatus whose `D`
/// prefix is DAV:.
pub(crate) fn name_only(ns: &str, name: &str) -> String {
    match ns == DAV {
        true => format!("<D:{name}/>"),
        false => empty(ns, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_bad_namespaces_are_refused() {
        let el =
            parse(br#"<D:propfind xmlns:D="DAV:"><D:prop><x:a xmlns:x="urn:x"/><b xmlns=""/></D:prop></D:propfind>"#)
                .unwrap();
        assert!(el.is(DAV, "propfind"));
        let prop = el.elements().next().unwrap();
        let names: Vec<String> = prop.elements().map(Element::clark).collect();
        assert_eq!(names, ["{urn:x}a", "{}b"]);
        for bad in [
            &br#"<D:propfind xmlns:D="DAV:"><D:prop><bar:foo xmlns:bar=""/></D:prop></D:propfind>"#[..],
            b"<foo>",
            b"<a:b/>",
            b"<a></b>",
            b"<a/><b/>",
            b"",
            b"<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>",
            b"<a>&nbsp;</a>",
            b"text",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH + 1), "</a>".repeat(MAX_DEPTH + 1));
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn elements_are_written_self_contained() {
        let el = parse(
            "<p:v xmlns:p='urn:p' xml:lang='en' p:k='1&amp;2'><foo xmlns='http://bar'/> a&lt;b &#65536;<q>x</q><n xmlns=''>y</n></p:v>"
                .as_bytes(),
        )
        .unwrap();
        let mut s = String::new();
        write(&el, &mut s);
        assert_eq!(
            s,
            "<v xmlns=\"urn:p\" xml:lang=\"en\" xmlns:a1=\"urn:p\" a1:k=\"1&amp;2\"><foo xmlns=\"http://bar\"/> a&lt;b \u{10000}<q xmlns=\"\">x</q><n xmlns=\"\">y</n></v>"
        );
        // What is written parses back to the same tree.
        assert_eq!(parse(s.as_bytes()).unwrap(), el);
        assert_eq!(empty("", "n"), "<n xmlns=\"\"/>");
    }
}
