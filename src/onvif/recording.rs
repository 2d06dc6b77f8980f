//! Profile G on the client side: what the camera has recorded on board
//! (recording service GetRecordings; search service GetRecordingSummary,
//! FindRecordings → GetRecordingSearchResults until Completed → EndSearch)
//! and where to replay it from (replay service GetReplayUri). The replay
//! itself is RTSP: `recorder::replay`.

use chrono::{DateTime, Utc};

use super::error::{OnvifError, OnvifResult};
use super::ops;
use super::session::DeviceSession;
use crate::xml::{Element, escape};

/// A video track of a recording and the stretch it holds data for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub token: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One recording as the search service describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    pub token: String,
    pub source_name: String,
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    pub video_tracks: Vec<Track>,
    pub status: String,
}

fn time(s: Option<String>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The recording tokens the recording service lists.
pub async fn get_recordings(s: &DeviceSession) -> OnvifResult<Vec<String>> {
    let op = ops::RECORDING_GET_RECORDINGS;
    let body = format!(r#"<trc:GetRecordings xmlns:trc="{}"/>"#, op.namespace);
    let el = s.call(op, &body).await?;
    Ok(el
        .children_local("RecordingItem")
        .filter_map(|r| r.text_at(&["RecordingToken"]))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect())
}

/// (DataFrom, DataUntil) over all recordings.
pub async fn get_recording_summary(
    s: &DeviceSession,
) -> OnvifResult<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    let op = ops::SEARCH_GET_RECORDING_SUMMARY;
    let body = format!(r#"<tse:GetRecordingSummary xmlns:tse="{}"/>"#, op.namespace);
    let el = s.call(op, &body).await?;
    Ok((
        time(el.text_at(&["Summary", "DataFrom"])),
        time(el.text_at(&["Summary", "DataUntil"])),
    ))
}

pub fn parse_recording_information(r: &Element) -> Option<RecordingInfo> {
    let token = r.text_at(&["RecordingToken"])?.trim().to_string();
    if token.is_empty() {
        return None;
    }
    let video_tracks = r
        .children_local("Track")
        .filter(|t| {
            t.text_at(&["TrackType"])
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("Video"))
        })
        .map(|t| Track {
            token: t.text_at(&["TrackToken"]).unwrap_or_default(),
            from: time(t.text_at(&["DataFrom"])),
            to: time(t.text_at(&["DataTo"])),
        })
        .collect();
    Some(RecordingInfo {
        token,
        source_name: r.text_at(&["Source", "Name"]).unwrap_or_default(),
        earliest: time(r.text_at(&["EarliestRecording"])),
        latest: time(r.text_at(&["LatestRecording"])),
        video_tracks,
        status: r.text_at(&["RecordingStatus"]).unwrap_or_default(),
    })
}

/// Every recording, by a search: FindRecordings, then results until the
/// search is Completed (at most `max_rounds` calls), then EndSearch, which
/// is sent even when collecting failed.
pub async fn find_recordings(
    s: &DeviceSession,
    max_rounds: usize,
) -> OnvifResult<Vec<RecordingInfo>> {
    let op = ops::SEARCH_FIND_RECORDINGS;
    let tse = op.namespace;
    let body = format!(
        r#"<tse:FindRecordings xmlns:tse="{tse}" xmlns:tt="{}"><tse:Scope/><tse:MaxMatches>100</tse:MaxMatches><tse:KeepAliveTime>PT20S</tse:KeepAliveTime></tse:FindRecordings>"#,
        super::ns::TT
    );
    let el = s.call(op, &body).await?;
    let token = el
        .text_at(&["SearchToken"])
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OnvifError::malformed(op.name, "no SearchToken"))?;
    let collected = collect_results(s, &token, max_rounds).await;
    let end = ops::SEARCH_END_SEARCH;
    let body = format!(
        r#"<tse:EndSearch xmlns:tse="{tse}"><tse:SearchToken>{}</tse:SearchToken></tse:EndSearch>"#,
        escape(&token)
    );
    let ended = s.call(end, &body).await;
    let found = collected?;
    if let Err(e) = ended {
        tracing::debug!(error = %e, "EndSearch failed; the search times out on its own");
    }
    Ok(found)
}

async fn collect_results(
    s: &DeviceSession,
    token: &str,
    max_rounds: usize,
) -> OnvifResult<Vec<RecordingInfo>> {
    let op = ops::SEARCH_GET_RECORDING_SEARCH_RESULTS;
    let body = format!(
        r#"<tse:GetRecordingSearchResults xmlns:tse="{}"><tse:SearchToken>{}</tse:SearchToken><tse:MinResults>1</tse:MinResults><tse:MaxResults>100</tse:MaxResults><tse:WaitTime>PT5S</tse:WaitTime></tse:GetRecordingSearchResults>"#,
        op.namespace,
        escape(token)
    );
    let mut out = Vec::new();
    for _ in 0..max_rounds.max(1) {
        let el = s.call(op, &body).await?;
        let list = el
            .child_local("ResultList")
            .ok_or_else(|| OnvifError::malformed(op.name, "no ResultList"))?;
        out.extend(
            list.children_local("RecordingInformation")
                .filter_map(parse_recording_information),
        );
        let state = list.text_at(&["SearchState"]).unwrap_or_default();
        if state.trim() == "Completed" {
            return Ok(out);
        }
    }
    Ok(out)
}

/// Where to replay a recording from (RTSP over TCP, unicast). The host is
/// rewritten to the one we reached, as for every address a camera reports.
pub async fn get_replay_uri(s: &DeviceSession, recording: &str) -> OnvifResult<url::Url> {
    let op = ops::REPLAY_GET_REPLAY_URI;
    let body = format!(
        r#"<trp:GetReplayUri xmlns:trp="{}" xmlns:tt="{}"><trp:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trp:StreamSetup><trp:RecordingToken>{}</trp:RecordingToken></trp:GetReplayUri>"#,
        op.namespace,
        super::ns::TT,
        escape(recording)
    );
    let el = s.call(op, &body).await?;
    let uri = el
        .text_at(&["Uri"])
        .ok_or_else(|| OnvifError::malformed(op.name, "no Uri"))?;
    super::address::rewrite(uri.trim(), s.device_url())
        .map(|r| r.url)
        .ok_or_else(|| OnvifError::malformed(op.name, format!("unusable Uri {uri:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_information_keeps_only_video_tracks_and_their_extent() {
        let xml = r#"<tt:RecordingInformation xmlns:tt="http://www.onvif.org/ver10/schema"><tt:RecordingToken> R1 </tt:RecordingToken><tt:Source><tt:Name>Door</tt:Name></tt:Source><tt:EarliestRecording>2026-11-25T10:00:00Z</tt:EarliestRecording><tt:LatestRecording>2026-11-26T10:00:00+01:00</tt:LatestRecording><tt:Track><tt:TrackToken>V</tt:TrackToken><tt:TrackType>Video</tt:TrackType><tt:DataFrom>2026-11-25T10:00:00Z</tt:DataFrom><tt:DataTo>2026-11-26T09:00:00Z</tt:DataTo></tt:Track><tt:Track><tt:TrackToken>A</tt:TrackToken><tt:TrackType>Audio</tt:TrackType></tt:Track><tt:RecordingStatus>Recording</tt:RecordingStatus></tt:RecordingInformation>"#;
        let el = crate::xml::parse(xml.as_bytes()).unwrap();
        let r = parse_recording_information(&el).unwrap();
        assert_eq!(r.token, "R1");
        assert_eq!(r.source_name, "Door");
        assert_eq!(r.video_tracks.len(), 1);
        assert_eq!(r.latest.unwrap().to_rfc3339(), "2026-11-26T09:00:00+00:00");
        let empty =
            crate::xml::parse(b"<RecordingInformation><RecordingToken/></RecordingInformation>")
                .unwrap();
        assert!(parse_recording_information(&empty).is_none());
    }
}
