//! Class labels: the distinct label strings of the training examples mapped
//! to class ids, with display names (AG News "1".."4" → World, Sports, …).

use crate::data::Example;
use crate::error::{Error, Result};

/// AG News class names, in class order (classes.txt of the dataset).
pub const AG_NEWS_CLASSES: [&str; 4] = ["World", "Sports", "Business", "Sci/Tech"];

/// Label strings ↔ class ids, and a display name per class.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LabelSet {
    /// Label strings as written in the files; index = class id.
    keys: Vec<String>,
    /// Display names; index = class id.
    names: Vec<String>,
}

impl LabelSet {
    /// The distinct labels of the training examples, in numeric order when
    /// every label is an integer ("2" < "10"), else in byte order. Fewer
    /// than two classes is an error.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut keys: Vec<String> = labels.into_iter().map(str::to_string).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.iter().all(|k| k.parse::<i64>().is_ok()) {
            keys.sort_by_key(|k| k.parse::<i64>().unwrap_or(0));
        }
        if keys.len() < 2 {
            return Err(Error::Config(format!(
                "a classifier needs at least two labels, the training data has {keys:?}"
            )));
        }
        Ok(Self { names: keys.clone(), keys })
    }

    /// Display names per class (as many as there are labels).
    pub fn with_names(mut self, names: Vec<String>) -> Result<Self> {
        if names.len() != self.keys.len() {
            return Err(Error::Config(format!("{} names for {} labels", names.len(), self.keys.len())));
        }
        self.names = names;
        Ok(self)
    }

    /// The class id of a label string.
    pub fn id(&self, key: &str) -> Option<u32> {
        self.keys.iter().position(|k| k == key).map(|i| i as u32)
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no classes (never, for a built set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Display names, index = class id.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Label strings, index = class id.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Class ids of examples read from `file`; a label the training data
    /// did not have is an error naming the file and line.
    pub fn encode(&self, file: &str, examples: &[Example]) -> Result<Vec<u32>> {
        examples
            .iter()
            .map(|e| {
                self.id(&e.label).ok_or_else(|| Error::Data {
                    file: file.to_string(),
                    line: Some(e.line),
                    message: format!("label {:?} is not one of the training labels {}", e.label, self.keys.join(", ")),
                })
            })
            .collect()
    }

    /// JSON for checkpoint metadata.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The set from [`Self::to_json`]; malformed JSON, mismatched lengths or
    /// repeated labels are an [`Error::Format`].
    pub fn from_json(json: &str) -> Result<Self> {
        let s: Self =
            serde_json::from_str(json).map_err(|e| Error::Format(format!("label metadata is not valid: {e}")))?;
        let mut sorted = s.keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if s.keys.len() < 2 || s.names.len() != s.keys.len() || sorted.len() != s.keys.len() {
            return Err(Error::Format("label metadata: need ≥ 2 distinct labels with one name each".into()));
        }
        Ok(s)
    }
}
