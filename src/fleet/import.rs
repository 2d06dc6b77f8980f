//! Inventory CSV import: every row is validated first and the whole file is
//! shown as a dry run (which devices change what, which rows are rejected
//! and why); applying re-plans the same file and writes all of it in one
//! transaction, or nothing. A file with any rejected row cannot be applied.
//!
//! The file's columns are the export's: `id` (or, without it, `serial`,
//! then `mac`) names the device; the editable inventory columns are
//! changed; read-only columns (model, firmware, status, …) are ignored; an
//! unknown column rejects the file, so a misspelt header never silently
//! drops data. Columns left out keep their stored values. A leading `'`
//! added by our export's formula defusing is removed again.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{EntityTrait, QueryFilter, TransactionTrait};

use super::access::Scope;
use super::audit::Actor;
use super::inventory::{FieldErrors, Inventory, InventoryForm, PlannedEdit, site_name};
use crate::db::entities::{device, site};
use crate::error::{Error, ErrorKind, Result};

pub const MAX_IMPORT_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_IMPORT_ROWS: usize = 20_000;

const EDITABLE: &[&str] = &[
    "name",
    "site",
    "location",
    "asset_tag",
    "purchase_order",
    "purchase_date",
    "supplier",
    "cost",
    "warranty_end",
    "end_of_life",
    "notes",
];
const READ_ONLY: &[&str] = &["manufacturer", "model", "firmware", "status"];
const KEYS: &[&str] = &["id", "serial", "mac"];

/// One row of the dry-run report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RowReport {
    /// 1-based line of the record in the file (the header is line 1).
    pub line: u64,
    pub device_id: Option<i32>,
    pub device_name: String,
    /// field → (before, after), only fields that change.
    pub changes: BTreeMap<String, (String, String)>,
    /// Why the row is rejected (empty when it is fine).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    pub rows: Vec<RowReport>,
    /// Problems with the file as a whole (header, size, encoding).
    pub file_errors: Vec<String>,
}

impl ImportReport {
    pub fn rejected(&self) -> usize {
        self.rows.iter().filter(|r| !r.errors.is_empty()).count()
    }
    pub fn changing(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.errors.is_empty() && !r.changes.is_empty())
            .count()
    }
    pub fn unchanged(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.errors.is_empty() && r.changes.is_empty())
            .count()
    }
    /// The file may be applied: no file errors and no rejected rows.
    pub fn applicable(&self) -> bool {
        self.file_errors.is_empty() && self.rejected() == 0
    }
}

/// Undo our export's formula defusing (`'=…` → `=…`).
fn undefuse(v: &str) -> &str {
    match v.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => v,
    }
}

/// The 1-based line of the record at a byte offset, counting `\n` only:
/// the CSV reader's own count takes a CRLF file's lines one off.
fn line_at(data: &[u8], byte: u64) -> u64 {
    let mut end = usize::try_from(byte).unwrap_or(usize::MAX).min(data.len());
    // After a CRLF the reader places a record at the LF: skip the line
    // ending to where the record's text starts.
    while end < data.len() && matches!(data[end], b'\r' | b'\n') {
        end += 1;
    }
    1 + data[..end].iter().filter(|&&b| b == b'\n').count() as u64
}

/// The cell that clears a field (a blank cell keeps what is stored).
pub const CLEAR: &str = "(clear)";

/// The file's delimiter, from its header line: comma, semicolon (what
/// spreadsheets write where the comma is the decimal mark) or tab,
/// whichever the header holds most of outside quotes.
pub fn sniff_delimiter(data: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &b in data.iter().take(64 * 1024) {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], 2 - i)).unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        [b',', b';', b'\t'][best]
    }
}

fn set_field(f: &mut InventoryForm, name: &str, v: &str) {
    let v = v.to_string();
    match name {
        "name" => f.name = v,
        "site" => f.site = v,
        "location" => f.location = v,
        "asset_tag" => f.asset_tag = v,
        "purchase_order" => f.purchase_order = v,
        "purchase_date" => f.purchase_date = v,
        "supplier" => f.supplier = v,
        "cost" => f.cost = v,
        "warranty_end" => f.warranty_end = v,
        "end_of_life" => f.end_of_life = v,
        "notes" => f.notes = v,
        _ => {}
    }
}

fn describe(errors: &FieldErrors) -> Vec<String> {
    errors.iter().map(|(k, v)| format!("{k}: {v}")).collect()
}

struct Plan {
    report: ImportReport,
    edits: Vec<PlannedEdit>,
}

impl Inventory {
    async fn plan_import(&self, data: &[u8], scope: &Scope) -> Result<Plan> {
        let mut report = ImportReport::default();
        let mut edits = Vec::new();
        if data.len() > MAX_IMPORT_BYTES {
            report.file_errors.push(format!(
                "the file is larger than {} MiB",
                MAX_IMPORT_BYTES / 1024 / 1024
            ));
            return Ok(Plan { report, edits });
        }
        let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(sniff_delimiter(data))
            .flexible(false)
            .trim(csv::Trim::None)
            .from_reader(data);
        let headers: Vec<String> = match rdr.headers() {
            Ok(h) => h.iter().map(|c| c.trim().to_ascii_lowercase()).collect(),
            Err(e) => {
                report.file_errors.push(format!("header row: {e}"));
                return Ok(Plan { report, edits });
            }
        };
        for h in &headers {
            if !(EDITABLE.contains(&h.as_str())
                || READ_ONLY.contains(&h.as_str())
                || KEYS.contains(&h.as_str()))
            {
                report.file_errors.push(format!(
                    "unknown column {h:?}; the columns are those of the export"
                ));
            }
        }
        let mut seen_cols = std::collections::HashSet::new();
        for h in &headers {
            if !seen_cols.insert(h) {
                report
                    .file_errors
                    .push(format!("column {h:?} appears twice"));
            }
        }
        if !headers.iter().any(|h| KEYS.contains(&h.as_str())) {
            report
                .file_errors
                .push("no id, serial or mac column to say which device each row is".into());
        }
        if !report.file_errors.is_empty() {
            return Ok(Plan { report, edits });
        }
        let col = |name: &str| headers.iter().position(|h| h == name);
        let (id_col, serial_col, mac_col) = (col("id"), col("serial"), col("mac"));

        let sites = site::Entity::find().all(self.db()).await?;
        // Every device the scope allows, indexed by each key, loaded once.
        let devices = device::Entity::find()
            .filter(scope.devices())
            .all(self.db())
            .await?;
        let mut by_id = HashMap::new();
        let mut by_serial = HashMap::new();
        let mut by_mac = HashMap::new();
        for (i, d) in devices.iter().enumerate() {
            by_id.insert(d.id, i);
            if let Some(s) = d.serial.as_deref().filter(|s| !s.is_empty()) {
                by_serial.insert(s.to_string(), i);
            }
            if let Some(m) = d.mac.as_deref().filter(|s| !s.is_empty()) {
                by_mac.insert(m.to_ascii_lowercase(), i);
            }
        }
        let mut claimed: HashMap<i32, u64> = HashMap::new();
        for (n, rec) in rdr.records().enumerate() {
            let line = n as u64 + 2;
            if n >= MAX_IMPORT_ROWS {
                report
                    .file_errors
                    .push(format!("more than {MAX_IMPORT_ROWS} rows"));
                break;
            }
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    report.rows.push(RowReport {
                        line: e
                            .position()
                            .map(|p| line_at(data, p.byte()))
                            .unwrap_or(line),
                        device_id: None,
                        device_name: String::new(),
                        changes: BTreeMap::new(),
                        errors: vec![format!("unreadable row: {e}")],
                    });
                    continue;
                }
            };
            let line = rec
                .position()
                .map(|p| line_at(data, p.byte()))
                .unwrap_or(line);
            let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).map(str::trim).unwrap_or("");
            let mut row = RowReport {
                line,
                device_id: None,
                device_name: String::new(),
                changes: BTreeMap::new(),
                errors: Vec::new(),
            };
            let found = if !get(id_col).is_empty() {
                match get(id_col).parse::<i32>() {
                    Ok(id) => by_id.get(&id).copied().ok_or(format!("id: no device {id}")),
                    Err(_) => Err(format!("id: {:?} is not a device id", get(id_col))),
                }
            } else if !get(serial_col).is_empty() {
                by_serial
                    .get(undefuse(get(serial_col)))
                    .copied()
                    .ok_or(format!(
                        "serial: no device with serial {:?}",
                        get(serial_col)
                    ))
            } else if !get(mac_col).is_empty() {
                by_mac
                    .get(&get(mac_col).to_ascii_lowercase())
                    .copied()
                    .ok_or(format!("mac: no device with MAC {:?}", get(mac_col)))
            } else {
                Err("no id, serial or mac to say which device this is".into())
            };
            let d = match found {
                Ok(i) => &devices[i],
                Err(e) => {
                    row.errors.push(e);
                    report.rows.push(row);
                    continue;
                }
            };
            row.device_id = Some(d.id);
            row.device_name = d.name.clone();
            if let Some(first) = claimed.insert(d.id, line) {
                row.errors.push(format!(
                    "the same device as line {first}; give each device once"
                ));
                report.rows.push(row);
                continue;
            }
            let mut form = InventoryForm::from_device(d, site_name(&sites, d.site_id));
            for (c, h) in headers.iter().enumerate() {
                if EDITABLE.contains(&h.as_str()) {
                    let raw = rec.get(c).unwrap_or("");
                    // A blank cell keeps the stored value; `(clear)` clears it.
                    if raw.trim().is_empty() {
                        continue;
                    }
                    if raw.trim() == CLEAR {
                        set_field(&mut form, h, "");
                        continue;
                    }
                    let v = if h == "notes" { raw } else { raw.trim() };
                    set_field(&mut form, h, undefuse(v));
                }
            }
            match self.plan_edit(d, &form, &sites, scope) {
                Ok(p) => {
                    if let (Some(b), Some(a)) = (p.before.as_object(), p.after.as_object()) {
                        for (k, av) in a {
                            let s = |v: Option<&serde_json::Value>| {
                                v.and_then(|v| v.as_str()).unwrap_or("").to_string()
                            };
                            row.changes.insert(k.clone(), (s(b.get(k)), s(Some(av))));
                        }
                    }
                    if !p.is_noop() {
                        edits.push(p);
                    }
                }
                Err(errors) => row.errors = describe(&errors),
            }
            report.rows.push(row);
        }
        Ok(Plan { report, edits })
    }

    /// The dry run: what applying this file would do. Writes nothing.
    pub async fn import_dry_run(&self, data: &[u8], scope: &Scope) -> Result<ImportReport> {
        Ok(self.plan_import(data, scope).await?.report)
    }

    /// Apply a file: plan it again (the database may have moved on since
    /// the dry run) and write every change in one transaction. Refused,
    /// with nothing written, when any row is rejected.
    pub async fn import_apply(
        &self,
        data: &[u8],
        scope: &Scope,
        actor: &Actor,
    ) -> Result<ImportReport> {
        actor.require(crate::fleet::users::Role::can_edit_inventory)?;
        let plan = self.plan_import(data, scope).await?;
        if !plan.report.applicable() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "the file has {} rejected rows and {} file errors; nothing was changed",
                    plan.report.rejected(),
                    plan.report.file_errors.len()
                ),
            ));
        }
        let txn = self.db().begin().await?;
        for edit in plan.edits {
            self.write_edit(&txn, edit, "device.import", actor).await?;
        }
        super::audit::record(
            &txn,
            actor,
            self.now(),
            super::audit::Entry {
                action: "inventory.import",
                target_kind: "inventory",
                target_id: String::new(),
                before: None,
                after: Some(serde_json::json!({
                    "rows": plan.report.rows.len(),
                    "changed": plan.report.changing(),
                })),
            },
        )
        .await?;
        txn.commit().await?;
        self.touch();
        Ok(plan.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_defusing_is_undone_and_nothing_else() {
        assert_eq!(undefuse("'=SUM(A1)"), "=SUM(A1)");
        assert_eq!(undefuse("'-3"), "-3");
        assert_eq!(undefuse("'quoted'"), "'quoted'");
        assert_eq!(undefuse("plain"), "plain");
    }
}
