//! Words and figures as people read them, shared by every face of the node (fqctl, reports,
//! the federation's logs): the language switch, amounts in yuan, gRPC code names. A leaf
//! module: it depends on nothing else of the crate, so any layer may use it.

use clap::ValueEnum;

/// Language of human output: Chinese by default, English on request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    /// Picks the label of this language.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// `INVALID_ARGUMENT` style name of a gRPC code.
pub fn code_name(c: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match c {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// "4,400.00" from fen.
pub fn fmt_fen(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    let (yuan, cents) = (abs / 100, abs % 100);
    let digits = yuan.to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}{grouped}.{cents:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_yuan_are_grouped() {
        assert_eq!(fmt_fen(440_000), "4,400.00");
        assert_eq!(fmt_fen(1_500_000_000), "15,000,000.00");
        assert_eq!(fmt_fen(7), "0.07");
        assert_eq!(fmt_fen(-150), "-1.50");
        assert_eq!(fmt_fen(0), "0.00");
    }

    #[test]
    fn code_names_are_the_proto_spelling() {
        assert_eq!(code_name(tonic::Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(tonic::Code::Unavailable), "UNAVAILABLE");
    }

    #[test]
    fn chinese_is_the_default() {
        assert_eq!(Lang::default().t("案件", "case"), "案件");
        assert_eq!(Lang::En.t("案件", "case"), "case");
    }
}
