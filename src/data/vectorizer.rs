//! Text → token ids with Keras `TextVectorization` semantics: standardize
//! (lowercase, strip punctuation), split (whitespace or characters), a
//! vocabulary of the most frequent tokens of the training texts, id 0 for
//! padding and 1 for out-of-vocabulary, and an optional maximum length
//! that keeps the front or the back of longer texts.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// How text is normalised before splitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Standardize {
    /// Keras's default: lowercase, then delete ASCII punctuation
    /// ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~`` (so "don't" → "dont").
    LowerAndStripPunctuation,
    /// Lowercase only.
    Lower,
    /// As written.
    None,
}

/// How standardized text becomes tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Split {
    /// Words separated by whitespace.
    Whitespace,
    /// Every character (Unicode scalar value) is a token.
    Character,
}

/// Which end survives when a text is longer than the output length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Truncate {
    /// Keep the first N tokens (Keras `TextVectorization`).
    KeepFront,
    /// Keep the last N tokens (Keras `pad_sequences`' default `truncating="pre"`).
    KeepBack,
}

/// Configuration of a [`TextVectorizer`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TextVectorizerConfig {
    /// Vocabulary size including padding and OOV (Keras `max_tokens`); `None` = every token.
    pub max_tokens: Option<usize>,
    /// Longest token sequence (Keras `output_sequence_length`); `None` = no limit.
    pub output_sequence_length: Option<usize>,
    /// Which end of a longer text survives.
    pub truncate: Truncate,
    /// Normalisation.
    pub standardize: Standardize,
    /// Tokenisation.
    pub split: Split,
    /// Fewest occurrences in the training texts for a token to get an id
    /// (rarer ones become OOV); 0 or 1 = every token.
    #[serde(default)]
    pub min_count: u64,
    /// Reserved tokens (e.g. `<bos>`, `<eos>`) given ids 2, 3, … right after
    /// padding and OOV, before the learned tokens.
    #[serde(default)]
    pub specials: Vec<String>,
}

impl TextVectorizerConfig {
    /// Keras's defaults: lowercase, strip punctuation, whitespace words, no limits.
    pub fn words() -> Self {
        Self {
            max_tokens: None,
            output_sequence_length: None,
            truncate: Truncate::KeepFront,
            standardize: Standardize::LowerAndStripPunctuation,
            split: Split::Whitespace,
            min_count: 0,
            specials: Vec::new(),
        }
    }

    /// Characters as written (character-level models).
    pub fn characters() -> Self {
        Self { standardize: Standardize::None, split: Split::Character, ..Self::words() }
    }

    /// Vocabulary size, padding and OOV included.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }
    /// Longest output sequence.
    pub fn with_output_sequence_length(mut self, n: usize) -> Self {
        self.output_sequence_length = Some(n);
        self
    }
    /// Which end of a longer text survives.
    pub fn with_truncate(mut self, truncate: Truncate) -> Self {
        self.truncate = truncate;
        self
    }
    /// Normalisation.
    pub fn with_standardize(mut self, standardize: Standardize) -> Self {
        self.standardize = standardize;
        self
    }
    /// Tokenisation.
    pub fn with_split(mut self, split: Split) -> Self {
        self.split = split;
        self
    }
    /// Tokens seen fewer than `n` times in training become OOV.
    pub fn with_min_count(mut self, n: u64) -> Self {
        self.min_count = n;
        self
    }
    /// Reserved tokens with ids 2, 3, … (e.g. `["<bos>", "<eos>"]`).
    pub fn with_specials(mut self, specials: &[&str]) -> Self {
        self.specials = specials.iter().map(|s| s.to_string()).collect();
        self
    }

    fn validate(&self) -> Result<()> {
        if self.max_tokens.is_some_and(|m| m < 3) {
            return Err(Error::Config(format!(
                "max_tokens must be at least 3 (padding, out-of-vocabulary and one token), got {:?}",
                self.max_tokens
            )));
        }
        if self.max_tokens.is_some_and(|m| m < self.specials.len() + 2) {
            return Err(Error::Config(format!(
                "max_tokens {:?} leaves no room for the {} special tokens",
                self.max_tokens,
                self.specials.len()
            )));
        }
        if self.output_sequence_length == Some(0) {
            return Err(Error::Config("output_sequence_length must be at least 1".into()));
        }
        Ok(())
    }
}

/// Name of the padding entry (id 0) and the out-of-vocabulary entry (id 1).
const PAD_TOKEN: &str = "";
const OOV_TOKEN: &str = "[UNK]";

/// A learned vocabulary and the rules that map text to ids.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TextVectorizer {
    config: TextVectorizerConfig,
    /// Index = id; entry 0 = `""` (padding), entry 1 = `"[UNK]"`.
    vocabulary: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl TextVectorizer {
    /// Padding id.
    pub const PAD: u32 = 0;
    /// Out-of-vocabulary id.
    pub const OOV: u32 = 1;

    /// Learns the vocabulary from the training texts only (Keras `adapt`):
    /// the `max_tokens − 2` most frequent tokens, by count descending and,
    /// between equal counts, by the token's bytes ascending, so the result
    /// does not depend on the order of the texts.
    pub fn adapt<'a>(config: TextVectorizerConfig, texts: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        config.validate()?;
        let mut counts: HashMap<String, u64> = HashMap::new();
        let probe = Self { config: config.clone(), vocabulary: Vec::new(), index: HashMap::new() };
        for text in texts {
            for token in probe.tokens(text) {
                *counts.entry(token).or_insert(0) += 1;
            }
        }
        if counts.is_empty() {
            return Err(Error::Config("the training texts hold no tokens to learn a vocabulary from".into()));
        }
        // A text may hold the OOV entry's own spelling ("[UNK]" with no
        // standardization): it encodes to the OOV id anyway, so it gets no
        // id of its own (a second "[UNK]" entry would be rejected).
        let mut ranked: Vec<(String, u64)> = counts
            .into_iter()
            .filter(|(t, c)| *c >= config.min_count && !config.specials.contains(t) && t != OOV_TOKEN)
            .collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.as_bytes().cmp(b.0.as_bytes())));
        let mut tokens = config.specials.clone();
        tokens.extend(ranked.into_iter().map(|(t, _)| t));
        if let Some(m) = config.max_tokens {
            tokens.truncate(m - 2);
        }
        Self::from_vocabulary(config, tokens)
    }

    /// A vectorizer with a given vocabulary (tokens after padding and OOV,
    /// in id order from 2). Empty or repeated tokens are an error.
    pub fn from_vocabulary(config: TextVectorizerConfig, tokens: Vec<String>) -> Result<Self> {
        config.validate()?;
        let mut vocabulary = vec![PAD_TOKEN.to_string(), OOV_TOKEN.to_string()];
        vocabulary.extend(tokens);
        if let Some(m) = config.max_tokens.filter(|&m| vocabulary.len() > m) {
            return Err(Error::Config(format!("{} tokens exceed max_tokens = {m}", vocabulary.len())));
        }
        Self::with_full_vocabulary(config, vocabulary).map_err(Error::Config)
    }

    fn with_full_vocabulary(
        config: TextVectorizerConfig,
        vocabulary: Vec<String>,
    ) -> std::result::Result<Self, String> {
        if vocabulary.len() < 2 || vocabulary[0] != PAD_TOKEN || vocabulary[1] != OOV_TOKEN {
            return Err("the vocabulary must start with the padding (\"\") and OOV (\"[UNK]\") entries".into());
        }
        let mut index = HashMap::with_capacity(vocabulary.len());
        for (id, token) in vocabulary.iter().enumerate().skip(2) {
            if token.is_empty() || token == OOV_TOKEN {
                return Err(format!("vocabulary entry {id} is {token:?}, which is reserved"));
            }
            let id = u32::try_from(id).map_err(|_| "the vocabulary exceeds u32 ids".to_string())?;
            if index.insert(token.clone(), id).is_some() {
                return Err(format!("token {token:?} appears twice in the vocabulary"));
            }
        }
        Ok(Self { config, vocabulary, index })
    }

    /// The configuration.
    pub fn config(&self) -> &TextVectorizerConfig {
        &self.config
    }

    /// Vocabulary size V, padding and OOV included (the embedding's rows).
    pub fn vocab_size(&self) -> usize {
        self.vocabulary.len()
    }

    /// The vocabulary, index = id.
    pub fn vocabulary(&self) -> &[String] {
        &self.vocabulary
    }

    /// The id of a (standardized) token.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.index.get(token).copied()
    }

    /// The standardized text.
    pub fn standardize(&self, text: &str) -> String {
        match self.config.standardize {
            Standardize::None => text.to_string(),
            Standardize::Lower => text.to_lowercase(),
            Standardize::LowerAndStripPunctuation => {
                text.to_lowercase().chars().filter(|c| !c.is_ascii_punctuation()).collect()
            }
        }
    }

    /// The tokens of a text after standardization and splitting.
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let s = self.standardize(text);
        match self.config.split {
            Split::Whitespace => s.split_whitespace().map(str::to_string).collect(),
            Split::Character => s.chars().map(String::from).collect(),
        }
    }

    /// Token ids of a text (unknown tokens → [`Self::OOV`]), truncated to
    /// `output_sequence_length` at the configured end; no padding.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids: Vec<u32> = self.tokens(text).iter().map(|t| self.id(t).unwrap_or(Self::OOV)).collect();
        if let Some(n) = self.config.output_sequence_length.filter(|&n| ids.len() > n) {
            match self.config.truncate {
                Truncate::KeepFront => ids.truncate(n),
                Truncate::KeepBack => {
                    ids.drain(..ids.len() - n);
                }
            }
        }
        ids
    }

    /// The tokens of ids (out-of-range ids read as `"[UNK]"`, padding as `""`).
    pub fn decode(&self, ids: &[u32]) -> Vec<&str> {
        ids.iter().map(|&i| self.vocabulary.get(i as usize).map_or(OOV_TOKEN, String::as_str)).collect()
    }

    /// JSON for checkpoint metadata.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The vectorizer from [`Self::to_json`]; a malformed or inconsistent
    /// vocabulary is an [`Error::Format`].
    pub fn from_json(json: &str) -> Result<Self> {
        let raw: Self =
            serde_json::from_str(json).map_err(|e| Error::Format(format!("vectorizer metadata is not valid: {e}")))?;
        raw.config.validate().map_err(|e| Error::Format(format!("vectorizer metadata: {e}")))?;
        if raw.config.max_tokens.is_some_and(|m| raw.vocabulary.len() > m) {
            return Err(Error::Format("vectorizer metadata: the vocabulary exceeds max_tokens".into()));
        }
        Self::with_full_vocabulary(raw.config, raw.vocabulary)
            .map_err(|e| Error::Format(format!("vectorizer metadata: {e}")))
    }
}
