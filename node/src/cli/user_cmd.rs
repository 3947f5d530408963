//! `fqctl user`: the node's console accounts (账号), with an admin operator certificate.
//!
//! `user add USERNAME --role ROLE [--name 姓名] [--password-stdin]`: without
//! `--password-stdin` the node makes a one-time password, printed once, that must be changed
//! at the first sign-in. `user list`, `user disable`, `user enable`, `user reset-password
//! USERNAME [--password-stdin]`.

use std::io::Read;

use clap::{Args, Subcommand};
use fengqiao_proto::v1 as pb;
use pb::user_service_client::UserServiceClient;
use serde_json::{Value, json};

use super::render::{fmt_time, table};
use super::{Cli, Failure, Lang, connect};

#[derive(Subcommand)]
pub enum UserCommand {
    /// 新建账号: a console account of this node.
    Add(AddArgs),
    /// 账号列表.
    List,
    /// 停用账号: no sign-in until enabled again.
    Disable { username: String },
    /// 启用账号.
    Enable { username: String },
    /// 重置密码: a new password from stdin, or a one-time one printed here.
    ResetPassword(ResetArgs),
}

#[derive(Args)]
pub struct AddArgs {
    pub username: String,
    /// intake, mediator, director, auditor or admin.
    #[arg(long)]
    pub role: String,
    /// 姓名.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Read the password from standard input (first line) instead of making a one-time one.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args)]
pub struct ResetArgs {
    pub username: String,
    /// Read the new password from standard input (first line).
    #[arg(long)]
    pub password_stdin: bool,
}

/// The first line of standard input, or nothing when not asked for.
fn password(from_stdin: bool) -> Result<String, Failure> {
    if !from_stdin {
        return Ok(String::new());
    }
    let mut s = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut s)
        .map_err(|e| Failure::usage(format!("reading the password from stdin: {e}")))?;
    let line = s.lines().next().unwrap_or_default().to_owned();
    if line.is_empty() {
        return Err(Failure::usage("no password on standard input"));
    }
    Ok(line)
}

fn user_row(u: &pb::User, lang: Lang) -> Vec<String> {
    vec![
        u.username.clone(),
        u.role.clone(),
        u.name.clone(),
        match (u.enabled, u.locked) {
            (false, _) => lang.t("停用", "disabled"),
            (true, true) => lang.t("已锁定", "locked"),
            (true, false) => lang.t("启用", "enabled"),
        }
        .to_owned(),
        if u.must_change_password {
            lang.t("须改密码", "must change")
        } else {
            ""
        }
        .to_owned(),
        if u.second_factor {
            lang.t("动态口令", "TOTP")
        } else {
            ""
        }
        .to_owned(),
        fmt_time(&u.last_login),
        fmt_time(&u.created_at),
    ]
}

fn users_table(users: &[pb::User], lang: Lang) -> String {
    let header = [
        lang.t("账号", "username"),
        lang.t("角色", "role"),
        lang.t("姓名", "name"),
        lang.t("状态", "state"),
        lang.t("密码", "password"),
        lang.t("双因素", "2nd factor"),
        lang.t("最近登录", "last sign-in"),
        lang.t("创建时间", "created"),
    ];
    let rows: Vec<_> = users.iter().map(|u| user_row(u, lang)).collect();
    table(&header, &rows)
}

fn user_json(u: &pb::User) -> Value {
    json!({
        "username": u.username,
        "role": u.role,
        "name": u.name,
        "enabled": u.enabled,
        "must_change_password": u.must_change_password,
        "locked": u.locked,
        "second_factor": u.second_factor,
        "last_login": super::render::rfc3339(&u.last_login),
        "created_at": super::render::rfc3339(&u.created_at),
        "updated_at": super::render::rfc3339(&u.updated_at),
    })
}

fn issued(cli: &Cli, lang: Lang, i: &pb::IssuedUser) -> String {
    let user = i.user.clone().unwrap_or_default();
    if cli.json {
        return format!(
            "{}\n",
            json!({"user": user_json(&user), "one_time_password": i.one_time_password})
        );
    }
    let mut out = users_table(std::slice::from_ref(&user), lang);
    if !i.one_time_password.is_empty() {
        out.push_str(&format!(
            "{}: {}\n",
            lang.t(
                "一次性密码（仅显示一次，首次登录须修改）",
                "one-time password (shown once; must be changed at first sign-in)"
            ),
            i.one_time_password
        ));
    }
    out
}

pub async fn run(cli: &Cli, cmd: &UserCommand) -> Result<String, Failure> {
    let target = connect::resolve(cli)?;
    let lang = target.lang;
    let mut c = UserServiceClient::new(connect::channel(&target).await?);
    match cmd {
        UserCommand::Add(a) => {
            let password = password(a.password_stdin)?;
            let i = c
                .add_user(pb::AddUserRequest {
                    username: a.username.clone(),
                    role: a.role.clone(),
                    name: a.name.clone(),
                    password,
                })
                .await?
                .into_inner();
            Ok(issued(cli, lang, &i))
        }
        UserCommand::List => {
            let users = c
                .list_users(pb::ListUsersRequest {})
                .await?
                .into_inner()
                .users;
            if cli.json {
                let all: Vec<_> = users.iter().map(user_json).collect();
                return Ok(format!("{}\n", Value::Array(all)));
            }
            Ok(users_table(&users, lang))
        }
        UserCommand::Disable { username } | UserCommand::Enable { username } => {
            let enabled = matches!(cmd, UserCommand::Enable { .. });
            let u = c
                .set_user_enabled(pb::SetUserEnabledRequest {
                    username: username.clone(),
                    enabled,
                })
                .await?
                .into_inner();
            if cli.json {
                return Ok(format!("{}\n", user_json(&u)));
            }
            Ok(users_table(std::slice::from_ref(&u), lang))
        }
        UserCommand::ResetPassword(r) => {
            let password = password(r.password_stdin)?;
            let i = c
                .reset_password(pb::ResetPasswordRequest {
                    username: r.username.clone(),
                    password,
                })
                .await?
                .into_inner();
            Ok(issued(cli, lang, &i))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_show_in_chinese() {
        let u = pb::User {
            username: "li.ming".into(),
            role: "intake".into(),
            name: "李明".into(),
            enabled: false,
            must_change_password: true,
            ..Default::default()
        };
        let t = users_table(&[u], Lang::Zh);
        for word in [
            "账号",
            "角色",
            "姓名",
            "停用",
            "须改密码",
            "li.ming",
            "李明",
        ] {
            assert!(t.contains(word), "{word} in {t}");
        }
    }
}
