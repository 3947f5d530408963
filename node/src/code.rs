//! Administrative division codes: the natural id of a node.
//!
//! Every 综治中心 sits at one administrative unit, and every unit has a statistical division
//! code (GB/T 2260 and its 12-digit extension). The code's length gives the tier and its
//! prefixes give the chain of parents:
//!
//! | tier            | digits | example        |
//! |-----------------|--------|----------------|
//! | 省 province     | 2      | `61`           |
//! | 市 city         | 4      | `6101`         |
//! | 县 county       | 6      | `610116`       |
//! | 乡镇 township   | 9      | `610116001`    |
//! | 村 village      | 12     | `610116001002` |
//!
//! Invariant: a [`NodeCode`] holds only ASCII digits and its length is exactly one of
//! 2, 4, 6, 9 or 12. It can only be built through [`NodeCode::parse`] (also used by
//! [`FromStr`] and by serde deserialisation), so every value in the program is valid.

use std::fmt;
use std::str::FromStr;

/// The administrative tier of a node, from the top of the federation tree to the bottom.
///
/// Ordered from the highest tier (`Province`) to the lowest (`Village`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// 省, 2 digits.
    Province,
    /// 市, 4 digits.
    City,
    /// 县/区, 6 digits.
    County,
    /// 乡镇/街道, 9 digits.
    Township,
    /// 村/社区, 12 digits.
    Village,
}

impl Tier {
    /// All tiers, highest first.
    pub const ALL: [Tier; 5] = [
        Tier::Province,
        Tier::City,
        Tier::County,
        Tier::Township,
        Tier::Village,
    ];

    /// Number of digits of a code at this tier.
    pub fn digits(self) -> usize {
        match self {
            Tier::Province => 2,
            Tier::City => 4,
            Tier::County => 6,
            Tier::Township => 9,
            Tier::Village => 12,
        }
    }

    /// The tier whose codes have exactly `digits` digits, if any.
    pub fn from_digits(digits: usize) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.digits() == digits)
    }

    /// The tier directly above this one (`None` for a province).
    pub fn parent(self) -> Option<Tier> {
        match self {
            Tier::Province => None,
            Tier::City => Some(Tier::Province),
            Tier::County => Some(Tier::City),
            Tier::Township => Some(Tier::County),
            Tier::Village => Some(Tier::Township),
        }
    }

    /// Chinese label, as used at the centers.
    pub fn label_zh(self) -> &'static str {
        match self {
            Tier::Province => "省",
            Tier::City => "市",
            Tier::County => "县",
            Tier::Township => "乡镇",
            Tier::Village => "村",
        }
    }

    /// English label.
    pub fn label_en(self) -> &'static str {
        match self {
            Tier::Province => "province",
            Tier::City => "city",
            Tier::County => "county",
            Tier::Township => "township",
            Tier::Village => "village",
        }
    }

    /// Name of the tier's configuration profile (`city`, `county`, ...).
    pub fn config_name(self) -> &'static str {
        match self {
            Tier::Province => "province",
            Tier::City => "city",
            Tier::County => "county",
            Tier::Township => "township",
            Tier::Village => "village",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label_en())
    }
}

/// Why a string is not a division code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// The input was empty.
    #[error("division code is empty")]
    Empty,
    /// A character other than an ASCII digit.
    #[error("division code must contain only digits 0-9, found {found:?} at position {position}")]
    NotDigit {
        /// The offending character.
        found: char,
        /// Its 0-based character position.
        position: usize,
    },
    /// Digits only, but not one of the tier lengths.
    #[error("division code must be 2, 4, 6, 9 or 12 digits, got {0}")]
    BadLength(usize),
}

/// A validated administrative division code (see the module documentation).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct NodeCode(String);

impl NodeCode {
    /// Parses and validates a division code. Surrounding whitespace is not accepted.
    pub fn parse(s: &str) -> Result<NodeCode, CodeError> {
        if s.is_empty() {
            return Err(CodeError::Empty);
        }
        if let Some((position, found)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(CodeError::NotDigit { found, position });
        }
        if Tier::from_digits(s.len()).is_none() {
            return Err(CodeError::BadLength(s.len()));
        }
        Ok(NodeCode(s.to_owned()))
    }

    /// The code as a string of digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tier of this node, given by the code's length.
    pub fn tier(&self) -> Tier {
        match Tier::from_digits(self.0.len()) {
            Some(tier) => tier,
            // Unreachable by the type's invariant; fall back to the lowest tier rather than panic.
            None => Tier::Village,
        }
    }

    /// The code of the parent unit (the prefix of the next shorter tier); `None` for a province.
    pub fn parent(&self) -> Option<NodeCode> {
        let parent = self.tier().parent()?;
        Some(NodeCode(self.0[..parent.digits()].to_owned()))
    }

    /// The chain of ancestors, nearest (parent) first, ending at the province.
    pub fn ancestors(&self) -> Vec<NodeCode> {
        let mut out = Vec::new();
        let mut cur = self.parent();
        while let Some(code) = cur {
            cur = code.parent();
            out.push(code);
        }
        out
    }

    /// The ancestor of this code at `tier`: `Some(self)` at its own tier, `None` below it.
    pub fn at_tier(&self, tier: Tier) -> Option<NodeCode> {
        (tier <= self.tier()).then(|| NodeCode(self.0[..tier.digits()].to_owned()))
    }

    /// True if `self` is a strict ancestor of `other` (parent, grandparent, ...).
    /// A code is not its own ancestor.
    pub fn is_ancestor_of(&self, other: &NodeCode) -> bool {
        other.0.len() > self.0.len() && other.0.starts_with(&self.0)
    }

    /// The deepest code that is equal to or an ancestor of both codes: `a` itself when `a` is
    /// an ancestor of `b` (or equal to it); `None` when they lie in different provinces.
    pub fn common_ancestor(&self, other: &NodeCode) -> Option<NodeCode> {
        Tier::ALL
            .into_iter()
            .rev()
            .filter_map(|tier| Some((self.at_tier(tier)?, other.at_tier(tier)?)))
            .find(|(a, b)| a == b)
            .map(|(a, _)| a)
    }
}

impl FromStr for NodeCode {
    type Err = CodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeCode::parse(s)
    }
}

impl TryFrom<String> for NodeCode {
    type Error = CodeError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        NodeCode::parse(&s)
    }
}

impl From<NodeCode> for String {
    fn from(code: NodeCode) -> String {
        code.0
    }
}

impl AsRef<str> for NodeCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> NodeCode {
        match NodeCode::parse(s) {
            Ok(code) => code,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parses_every_tier() {
        for (s, tier) in [
            ("61", Tier::Province),
            ("6101", Tier::City),
            ("610116", Tier::County),
            ("610116001", Tier::Township),
            ("610116001002", Tier::Village),
        ] {
            let code = c(s);
            assert_eq!(code.tier(), tier);
            assert_eq!(code.as_str(), s);
            assert_eq!(code.to_string(), s);
            assert_eq!(s.parse::<NodeCode>(), Ok(code));
        }
    }

    #[test]
    fn rejects_bad_codes_with_a_reason() {
        for len in [1usize, 3, 5, 7, 8, 10, 11, 13, 20] {
            let s = "1".repeat(len);
            let err = NodeCode::parse(&s).unwrap_err();
            assert_eq!(err, CodeError::BadLength(len));
            assert_eq!(
                err.to_string(),
                format!("division code must be 2, 4, 6, 9 or 12 digits, got {len}")
            );
        }
        assert_eq!(NodeCode::parse(""), Err(CodeError::Empty));
        assert_eq!(
            NodeCode::parse("61a1"),
            Err(CodeError::NotDigit {
                found: 'a',
                position: 2
            })
        );
        // Whitespace, signs and non-ASCII digits are not digits.
        for s in [" 61", "61 ", "+61", "-6", "6１", "٦١", "61\n"] {
            assert!(
                matches!(NodeCode::parse(s), Err(CodeError::NotDigit { .. })),
                "{s:?}"
            );
        }
        let msg = NodeCode::parse("6x").unwrap_err().to_string();
        assert!(msg.contains("only digits") && msg.contains("'x'"), "{msg}");
    }

    #[test]
    fn parent_chain() {
        let v = c("610116001002");
        assert_eq!(v.parent(), Some(c("610116001")));
        assert_eq!(c("610116001").parent(), Some(c("610116")));
        assert_eq!(c("610116").parent(), Some(c("6101")));
        assert_eq!(c("6101").parent(), Some(c("61")));
        assert_eq!(c("61").parent(), None);
        assert_eq!(
            v.ancestors(),
            vec![c("610116001"), c("610116"), c("6101"), c("61")]
        );
        assert!(c("61").ancestors().is_empty());
        assert_eq!(v.at_tier(Tier::County), Some(c("610116")));
        assert_eq!(v.at_tier(Tier::Village), Some(v.clone()));
        assert_eq!(c("6101").at_tier(Tier::County), None);
    }

    #[test]
    fn ancestry() {
        let county = c("610116");
        assert!(c("61").is_ancestor_of(&county));
        assert!(c("6101").is_ancestor_of(&county));
        assert!(county.is_ancestor_of(&c("610116001002")));
        assert!(!county.is_ancestor_of(&county), "strict");
        assert!(!county.is_ancestor_of(&c("6101")), "not upward");
        assert!(!county.is_ancestor_of(&c("610117001")), "sibling subtree");
        assert!(!c("6101").is_ancestor_of(&c("6201")));
    }

    #[test]
    fn common_ancestors() {
        let a = c("610116001002");
        let b = c("610116002001");
        assert_eq!(a.common_ancestor(&b), Some(c("610116")));
        assert_eq!(b.common_ancestor(&a), Some(c("610116")));
        assert_eq!(a.common_ancestor(&a), Some(a.clone()));
        assert_eq!(
            c("610116").common_ancestor(&a),
            Some(c("610116")),
            "ancestor itself"
        );
        assert_eq!(a.common_ancestor(&c("610202")), Some(c("61")));
        assert_eq!(a.common_ancestor(&c("6101")), Some(c("6101")));
        assert_eq!(a.common_ancestor(&c("62")), None);
    }

    #[test]
    fn tier_labels() {
        assert_eq!(Tier::Township.label_zh(), "乡镇");
        assert_eq!(Tier::County.label_en(), "county");
        assert_eq!(Tier::Village.config_name(), "village");
        assert_eq!(Tier::Province.config_name(), "province");
        for t in Tier::ALL {
            assert_eq!(Tier::from_digits(t.digits()), Some(t));
        }
        assert!(Tier::Province < Tier::Village);
    }

    #[test]
    fn serde_validates() {
        let code = c("610116");
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, "\"610116\"");
        assert_eq!(serde_json::from_str::<NodeCode>(&json).unwrap(), code);
        let err = serde_json::from_str::<NodeCode>("\"6101160\"").unwrap_err();
        assert!(err.to_string().contains("got 7"), "{err}");
    }
}
