//! Prompts of a chosen length that never share a beginning with an earlier step's, so no
//! prompt cache can serve a step from another one's work.

use vramtrace_trace::clock::monotonic_ns;

/// Common short English words: one token each in most tokenizers, so prompt length is easy to
/// steer, and never the same sequence twice (no prompt-cache hit between steps).
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "was", "that", "for", "on", "are", "with", "as", "at", "be", "this", "have", "from",
    "or", "one", "had", "by", "word", "but", "not", "what", "all", "were", "we", "when", "your", "can", "said", "there", "use",
    "an", "each", "which", "she", "do", "how", "their", "if", "will", "up", "other", "about", "out", "many", "then", "them",
    "these", "so", "some", "her", "would", "make", "like", "him", "into", "time", "has", "look", "two", "more", "write", "go",
    "see", "number", "no", "way", "could", "people", "my", "than", "first", "water", "been", "call", "who", "oil", "its", "now",
    "find", "long", "down", "day", "did", "get", "come", "made", "may", "part", "over", "new", "sound", "take", "only", "little",
    "work", "know", "place", "year", "live", "me", "back", "give", "most", "very", "after", "thing", "our", "just", "name",
    "good", "sentence", "man", "think", "say", "great", "where", "help", "through", "much", "before", "line", "right", "too",
    "mean", "old", "any", "same", "tell", "boy", "follow", "came", "want", "show", "also", "around", "form", "three", "small",
    "set", "put", "end", "does", "another", "well", "large", "must", "big", "even", "such", "because", "turn", "here", "why",
    "ask", "went", "men", "read", "need", "land", "different", "home", "us", "move", "try", "kind", "hand", "picture", "again",
    "change", "off", "play", "spell", "air", "away", "animal", "house", "point", "page", "letter", "mother", "answer", "found",
    "study", "still", "learn", "should", "world", "high", "every", "near", "add", "food", "between", "own", "below", "country",
    "plant", "last", "school", "father", "keep", "tree", "never", "start", "city", "earth", "eye", "light", "thought", "head",
    "under", "story", "saw", "left", "few", "while", "along", "might", "close", "something", "seem", "next", "hard", "open",
    "example", "begin", "life", "always", "those", "both", "paper", "together", "got", "group", "often", "run",
];

/// xorshift64*: deterministic enough to debug, seeded per run so runs differ.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new() -> Rng {
        let seed = monotonic_ns() ^ ((std::process::id() as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15;
        Rng(seed | 1)
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One step's prompt: a unique tag, then random words; grows or shrinks without changing its
/// beginning, so calibration rounds measure the same text.
pub(super) struct Prompt {
    tag: String,
    words: Vec<&'static str>,
}

impl Prompt {
    pub(super) fn new(rng: &mut Rng, step: usize) -> Prompt {
        Prompt { tag: format!("Sweep{step}-{:012x}:", rng.next() & 0xffff_ffff_ffff), words: Vec::new() }
    }
    pub(super) fn text(&mut self, rng: &mut Rng, n: usize) -> String {
        while self.words.len() < n {
            self.words.push(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
        }
        let mut s = String::with_capacity(self.tag.len() + n * 6);
        s.push_str(&self.tag);
        for w in &self.words[..n] {
            s.push(' ');
            s.push_str(w);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_unique_and_stable_while_growing() {
        let mut rng = Rng::new();
        let mut a = Prompt::new(&mut rng, 1);
        let short = a.text(&mut rng, 10);
        let long = a.text(&mut rng, 20);
        assert!(long.starts_with(&short));
        assert_eq!(long.split_whitespace().count(), 21);
        let mut b = Prompt::new(&mut rng, 1);
        assert_ne!(b.text(&mut rng, 10), short);
    }
}
