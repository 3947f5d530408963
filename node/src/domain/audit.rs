//! Access to personal data (个人信息查阅记录): who saw which case's parties unmasked, and
//! when. Kept by the node for its auditor (PIPL: accountability; 等保: audit).

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// One view of a case's personal data, unmasked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub at: Timestamp,
    /// Who (identity URI).
    pub actor: String,
    pub case_id: String,
    /// What was seen (the operation: "GetCase").
    pub what: String,
}
