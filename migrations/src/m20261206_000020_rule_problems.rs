//! Alert rules whose site or channel list cannot be read used to match
//! every site and notify every channel (fail open). They now match
//! nothing; this migration adds `alert_rules.problem` and flags the rows
//! that are broken today, so the settings page can say which rules to save
//! again.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AlertRules {
    Table,
    Problem,
}

/// A JSON array of whole numbers (`[]`, `[1, 2]`), as camfleet writes
/// the lists.
fn is_id_list(text: Option<&str>) -> bool {
    let Some(t) = text.map(str::trim) else {
        return false;
    };
    let Some(inner) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return false;
    };
    inner.trim().is_empty() || inner.split(',').all(|n| n.trim().parse::<i32>().is_ok())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AlertRules::Table)
                .add_column(
                    ColumnDef::new(AlertRules::Problem)
                        .string()
                        .not_null()
                        .default(""),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        let backend = db.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT id, CAST(site_ids AS TEXT), CAST(channel_ids AS TEXT) FROM alert_rules",
            ))
            .await?;
        for row in rows {
            let id: i32 = row.try_get_by_index(0)?;
            let sites: Option<String> = row.try_get_by_index(1)?;
            let channels: Option<String> = row.try_get_by_index(2)?;
            let mut problems = Vec::new();
            if !is_id_list(sites.as_deref()) {
                problems.push("its site list is unreadable");
            }
            if !is_id_list(channels.as_deref()) {
                problems.push("its channel list is unreadable");
            }
            if problems.is_empty() {
                continue;
            }
            let text = format!(
                "{}: the rule matches nothing until it is saved again",
                problems.join(" and ")
            );
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    sea_orm_migration::sea_orm::DatabaseBackend::Postgres => {
                        "UPDATE alert_rules SET problem = $1 WHERE id = $2"
                    }
                    _ => "UPDATE alert_rules SET problem = ? WHERE id = ?",
                },
                [text.into(), id.into()],
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AlertRules::Table)
                .drop_column(AlertRules::Problem)
                .to_owned(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_lists() {
        use super::is_id_list;
        assert!(is_id_list(Some("[]")));
        assert!(is_id_list(Some("[1, 2,3]")));
        assert!(!is_id_list(Some("{\"a\":1}")));
        assert!(!is_id_list(Some("[\"1\"]")));
        assert!(!is_id_list(Some("null")));
        assert!(!is_id_list(None));
    }
}
