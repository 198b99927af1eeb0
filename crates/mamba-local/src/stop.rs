//! Stop sequences over streamed text: the stop text is never emitted, even when it arrives split
//! across several tokens, and text that might start a stop sequence is held back until it is
//! known not to.

/// Watches generated text for stop sequences.
#[derive(Debug, Default)]
pub(crate) struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub(crate) fn new(stops: &[String]) -> StopMatcher {
        StopMatcher { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), held: String::new() }
    }

    /// Adds text; returns what can be emitted now and whether a stop sequence was reached (then
    /// the returned text is everything before it, and generation ends).
    pub(crate) fn push(&mut self, text: &str) -> (String, bool) {
        self.held.push_str(text);
        let first_stop = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min();
        if let Some(at) = first_stop {
            let out = self.held[..at].to_owned();
            self.held.clear();
            return (out, true);
        }
        // Hold back the longest tail that is the beginning of some stop sequence.
        let mut keep = 0;
        for stop in &self.stops {
            for (len, _) in stop.char_indices().skip(1) {
                if len > keep && self.held.ends_with(&stop[..len]) {
                    keep = len;
                }
            }
        }
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_owned();
        self.held.drain(..cut);
        (out, false)
    }

    /// The generation ended for another reason: the held text was not a stop after all.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| (*s).to_owned()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for p in pieces {
            let (text, stopped) = m.push(p);
            out.push_str(&text);
            if stopped {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn a_stop_split_across_pieces_is_never_emitted() {
        assert_eq!(run(&["END"], &["abc E", "N", "D more"]), ("abc ".to_owned(), true));
        assert_eq!(run(&["\n\n"], &["line\n", "\nnext"]), ("line".to_owned(), true));
    }

    #[test]
    fn held_text_is_released_when_it_is_not_a_stop() {
        let stops = vec!["END".to_owned()];
        let mut m = StopMatcher::new(&stops);
        assert_eq!(m.push("the E"), ("the ".to_owned(), false));
        assert_eq!(m.push("NVOY"), ("ENVOY".to_owned(), false));
        assert_eq!(run(&["END"], &["x E"]), ("x E".to_owned(), false));
    }

    #[test]
    fn the_earliest_stop_wins_and_multibyte_text_is_safe() {
        assert_eq!(run(&["b", "a"], &["xxab"]), ("xx".to_owned(), true));
        assert_eq!(run(&["日本"], &["é日", "本語"]), ("é".to_owned(), true));
        assert_eq!(run(&[""], &["abc"]), ("abc".to_owned(), false));
    }
}
