//! The firmware page: which firmware versions run on which models, with
//! counts (within the user's sites); each cell links to those devices.

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use sea_orm::{EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::State;
use super::auth::CurrentUser;
use super::error::WebError;
use crate::db::entities::device;

pub struct ModelRow {
    pub manufacturer: String,
    pub model: String,
    pub total: i64,
    /// (firmware, count, link to the devices)
    pub versions: Vec<(String, i64, String)>,
}

#[derive(Template, WebTemplate)]
#[template(path = "firmware.html")]
pub struct FirmwarePage {
    pub me: CurrentUser,
    pub rows: Vec<ModelRow>,
}

pub async fn firmware(
    AxState(state): AxState<State>,
    Extension(me): Extension<CurrentUser>,
) -> Result<Response, WebError> {
    let counts: Vec<(String, String, String, i64)> = device::Entity::find()
        .filter(me.scope.devices())
        .select_only()
        .column(device::Column::Manufacturer)
        .column(device::Column::Model)
        .column(device::Column::Firmware)
        .column_as(sea_orm::sea_query::Expr::cust("COUNT(*)"), "n")
        .group_by(device::Column::Manufacturer)
        .group_by(device::Column::Model)
        .group_by(device::Column::Firmware)
        .order_by_asc(device::Column::Manufacturer)
        .order_by_asc(device::Column::Model)
        .order_by_asc(device::Column::Firmware)
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut rows: Vec<ModelRow> = Vec::new();
    for (manufacturer, model, fw, n) in counts {
        let link = {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            s.append_pair("manufacturer", &manufacturer);
            s.append_pair("model", &model);
            s.append_pair("firmware", &fw);
            format!("/devices?{}", s.finish())
        };
        match rows.last_mut() {
            Some(r) if r.manufacturer == manufacturer && r.model == model => {
                r.total += n;
                r.versions.push((fw, n, link));
            }
            _ => rows.push(ModelRow {
                manufacturer,
                model,
                total: n,
                versions: vec![(fw, n, link)],
            }),
        }
    }
    Ok(FirmwarePage { me, rows }.into_response())
}
