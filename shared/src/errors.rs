//! Error messages for people: an error and its causes on one line, each said once.
//!
//! Layers of wrapping repeat their source's text ("cannot reach X: connection refused" over
//! "connection refused") or say nothing of their own ("transport error" over "transport
//! error"); printed in full, a chain reads "transport error: transport error: …". [`chain`]
//! keeps each message once and drops a layer whose text another layer already says.

/// `error` and its sources joined by `": "`, outermost first, without repetition.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    let mut kept: Vec<&str> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let said_elsewhere = part.is_empty()
            || kept.iter().any(|k| k.contains(part.as_str()))
            || parts[i + 1..]
                .iter()
                .any(|inner| inner.contains(part.as_str()));
        if !said_elsewhere {
            kept.push(part);
        }
    }
    kept.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    fn layers(texts: &[&'static str]) -> Layer {
        let mut inner = None;
        for text in texts.iter().rev() {
            inner = Some(Box::new(Layer(text, inner)));
        }
        *inner.unwrap()
    }

    #[test]
    fn each_message_is_said_once() {
        assert_eq!(
            chain(&layers(&[
                "transport error",
                "transport error",
                "client error (Connect)",
                "connection refused (os error 111)",
            ])),
            "transport error: client error (Connect): connection refused (os error 111)"
        );
        // A layer that quotes its source already: the source is not said again.
        assert_eq!(
            chain(&layers(&[
                "cannot reach the collector at http://[::1]:1: connection refused",
                "connection refused",
            ])),
            "cannot reach the collector at http://[::1]:1: connection refused"
        );
        // A layer whose text its source repeats with more: only the fuller one.
        assert_eq!(
            chain(&layers(&["bad token", "reading x: bad token", "io"])),
            "reading x: bad token: io"
        );
        assert_eq!(chain(&layers(&["alone"])), "alone");
        assert_eq!(chain(&layers(&["", "inner"])), "inner");
    }
}
