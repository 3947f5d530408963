//! The console's 导入历史台账 page: the template to download, a file to upload (multipart,
//! with the session's anti-forgery token as a field), and what the import did — the one
//! import of the application layer (`crate::app::import`), as `fqctl case import`.

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Web;
use super::pages::render;
use super::session::{self, Signed};
use super::view::Chrome;
use crate::app::import::Imported;
use crate::domain::DomainError;
use crate::error::Error;
use crate::report::sheet::IMPORT_MAX_BYTES;

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/import", get(page).post(upload))
        .route("/import/template.xlsx", get(template))
        // The file: up to the import's limit, plus the form's other fields.
        .layer(DefaultBodyLimit::max(IMPORT_MAX_BYTES + 64 * 1024))
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    c: Chrome,
    file_name: String,
    error: String,
    done: Option<Imported>,
}

async fn page(State(web): State<Web>, s: Signed) -> Response {
    render(&ImportPage {
        c: web.chrome(&s, "cases"),
        file_name: String::new(),
        error: String::new(),
        done: None,
    })
}

async fn template(s: Signed) -> Response {
    match crate::report::ledger::import_template() {
        Ok(bytes) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                ),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"import-template.xlsx\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "writing the import template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                s.lang.t("未能生成模板", "The template could not be made"),
            )
                .into_response()
        }
    }
}

async fn upload(State(web): State<Web>, s: Signed, mut form: Multipart) -> Response {
    let mut csrf = String::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    let unreadable = |s: &Signed, web: &Web| {
        let page = ImportPage {
            c: web.chrome(s, "cases"),
            file_name: String::new(),
            error: s
                .lang
                .t(
                    "上传未完成或文件过大（最大 8 MiB），请重试",
                    "The upload did not complete or the file is too large (8 MiB at most); try again",
                )
                .into(),
            done: None,
        };
        (StatusCode::BAD_REQUEST, render(&page)).into_response()
    };
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => return unreadable(&s, &web),
        };
        match field.name() {
            Some("csrf") => match field.text().await {
                Ok(t) => csrf = t,
                Err(_) => return unreadable(&s, &web),
            },
            Some("file") => {
                let name = field.file_name().unwrap_or_default().to_owned();
                match field.bytes().await {
                    Ok(b) => file = Some((name, b.to_vec())),
                    Err(_) => return unreadable(&s, &web),
                }
            }
            _ => {}
        }
    }
    // The token is checked before the file is looked at: a forged post does nothing.
    if !session::same(&csrf, &s.caller.session.csrf) {
        tracing::warn!(caller = %s.caller.who.uri(), "console import without its anti-forgery token refused");
        return session::forbidden(s.lang);
    }
    let (file_name, content) = match file {
        Some((name, content)) if !content.is_empty() => (name, content),
        _ => {
            let page = ImportPage {
                c: web.chrome(&s, "cases"),
                file_name: String::new(),
                error: s
                    .lang
                    .t("请选择要导入的文件", "Choose a file to import")
                    .into(),
                done: None,
            };
            return (StatusCode::BAD_REQUEST, render(&page)).into_response();
        }
    };
    match web
        .app
        .import_cases(&s.caller.who, &file_name, &content)
        .await
    {
        Ok(done) => render(&ImportPage {
            c: web.chrome(&s, "cases"),
            file_name,
            error: String::new(),
            done: Some(done),
        }),
        // The file is not the template: its reason is already written for the clerk.
        Err(Error::Domain(DomainError::InvalidArgument {
            field: "file",
            message,
        })) => {
            let page = ImportPage {
                c: web.chrome(&s, "cases"),
                file_name,
                error: message,
                done: None,
            };
            (StatusCode::BAD_REQUEST, render(&page)).into_response()
        }
        Err(e) => web.error(&s, &e, "/import"),
    }
}
