//! The simulated camera's on-board recording (ONVIF Profile G): one
//! recording of the main stream on its "SD card", from `since` until now,
//! with gaps a test can punch in. The recording, search and replay
//! services answer from it, and the RTSP server replays it.
//!
//! Frames sit on a fixed grid: frame k is at `since + k × 100 ms` and is a
//! keyframe when k is a multiple of 10. Gaps are widened to whole GOPs, as
//! a camera's recording restarts at a keyframe.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::clip::{FRAME_MS, GOP};
use super::state::SimFault;
use crate::onvif::ns;
use crate::xml::Element;

pub const RECORDING_TOKEN: &str = "SD_Main";
const TRACK_TOKEN: &str = "VIDEO001";

#[derive(Debug, Clone)]
pub struct SimRecording {
    pub since: DateTime<Utc>,
    /// Missing stretches, `[from, to)`, aligned to keyframes.
    gaps: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Open searches: token → results handed out already.
    searches: HashMap<String, bool>,
    next_search: u64,
    /// Every replay range asked for, in the camera's time (for tests).
    pub served: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

/// One frame of a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayFrame {
    /// Position on the grid (picks the clip frame).
    pub k: u64,
    pub at: DateTime<Utc>,
    pub key: bool,
    /// The first frame after a gap.
    pub after_gap: bool,
    /// The last frame before a gap.
    pub before_gap: bool,
}

impl SimRecording {
    pub fn new(since: DateTime<Utc>) -> Self {
        Self {
            since,
            gaps: Vec::new(),
            searches: HashMap::new(),
            next_search: 1,
            served: Vec::new(),
        }
    }

    fn gop_ms() -> i64 {
        FRAME_MS * GOP as i64
    }

    fn grid(&self, t: DateTime<Utc>, up: bool) -> DateTime<Utc> {
        let ms = (t - self.since).num_milliseconds().max(0);
        let g = Self::gop_ms();
        let n = if up { (ms + g - 1) / g } else { ms / g };
        self.since + Duration::milliseconds(n * g)
    }

    /// The camera lost `[from, to)` (widened to whole GOPs).
    pub fn add_gap(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        let (a, b) = (self.grid(from, false), self.grid(to, true));
        if b > a {
            self.gaps.push((a, b));
            self.gaps.sort();
        }
    }

    fn in_gap(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.gaps
            .iter()
            .find(|(a, b)| *a <= t && t < *b)
            .map(|(_, b)| *b)
    }

    /// Frames of `[from, to)` as a replay sends them: from the keyframe at
    /// or before `from`, never past `now`.
    pub fn frames(
        &self,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = ReplayFrame> + '_ {
        let end = to.map_or(now, |t| t.min(now));
        let mut t = self.grid(from.max(self.since), false);
        let mut after_gap = false;
        std::iter::from_fn(move || {
            loop {
                if t >= end {
                    return None;
                }
                if let Some(resume) = self.in_gap(t) {
                    t = resume;
                    after_gap = true;
                    continue;
                }
                let k = ((t - self.since).num_milliseconds() / FRAME_MS) as u64;
                let next = t + Duration::milliseconds(FRAME_MS);
                let f = ReplayFrame {
                    k,
                    at: t,
                    key: k.is_multiple_of(GOP),
                    after_gap: std::mem::take(&mut after_gap),
                    before_gap: self.in_gap(next).is_some(),
                };
                t = next;
                return Some(f);
            }
        })
    }

    /// The SOAP operations of the recording, search and replay services;
    /// None when `op` is none of them.
    pub fn handle(
        &mut self,
        op: &Element,
        now: DateTime<Utc>,
        rtsp_authority: &str,
        index: u32,
    ) -> Option<Result<String, SimFault>> {
        let token_ok = |e: &Element, path: &[&str]| {
            let t = e.text_at(path).unwrap_or_default();
            if t == RECORDING_TOKEN {
                Ok(())
            } else {
                Err(SimFault {
                    sender: true,
                    subcode: "NoRecording",
                    reason: format!("no recording {t:?}"),
                })
            }
        };
        let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let info = || {
            format!(
                r#"<tt:RecordingToken>{RECORDING_TOKEN}</tt:RecordingToken><tt:Source><tt:SourceId>cam{index}</tt:SourceId><tt:Name>Main stream</tt:Name><tt:Location>SD card</tt:Location><tt:Description/><tt:Address>rtsp://{rtsp_authority}/cam{index}/main</tt:Address></tt:Source><tt:EarliestRecording>{}</tt:EarliestRecording><tt:LatestRecording>{}</tt:LatestRecording><tt:Content>Continuous</tt:Content><tt:Track><tt:TrackToken>{TRACK_TOKEN}</tt:TrackToken><tt:TrackType>Video</tt:TrackType><tt:Description>H.264</tt:Description><tt:DataFrom>{0}</tt:DataFrom><tt:DataTo>{1}</tt:DataTo></tt:Track><tt:RecordingStatus>Recording</tt:RecordingStatus>"#,
                ts(self.since),
                ts(now)
            )
        };
        let r = match (op.ns_uri(), op.local.as_str()) {
            (Some(ns::TRC), "GetRecordings") => Ok(format!(
                r#"<trc:GetRecordingsResponse xmlns:trc="{}" xmlns:tt="{}"><trc:RecordingItem><tt:RecordingToken>{RECORDING_TOKEN}</tt:RecordingToken><tt:Configuration><tt:Source><tt:SourceId>cam{index}</tt:SourceId><tt:Name>Main stream</tt:Name><tt:Location>SD card</tt:Location><tt:Description/><tt:Address>rtsp://{rtsp_authority}/cam{index}/main</tt:Address></tt:Source><tt:Content>Continuous</tt:Content><tt:MaximumRetentionTime>PT0S</tt:MaximumRetentionTime></tt:Configuration><tt:Tracks><tt:Track><tt:TrackToken>{TRACK_TOKEN}</tt:TrackToken><tt:Configuration><tt:TrackType>Video</tt:TrackType><tt:Description>H.264</tt:Description></tt:Configuration></tt:Track></tt:Tracks></trc:RecordingItem></trc:GetRecordingsResponse>"#,
                ns::TRC,
                ns::TT
            )),
            (Some(ns::TSE), "GetRecordingSummary") => Ok(format!(
                r#"<tse:GetRecordingSummaryResponse xmlns:tse="{}" xmlns:tt="{}"><tse:Summary><tt:DataFrom>{}</tt:DataFrom><tt:DataUntil>{}</tt:DataUntil><tt:NumberRecordings>1</tt:NumberRecordings></tse:Summary></tse:GetRecordingSummaryResponse>"#,
                ns::TSE,
                ns::TT,
                ts(self.since),
                ts(now)
            )),
            (Some(ns::TSE), "FindRecordings") => {
                if op.text_at(&["KeepAliveTime"]).is_none() {
                    return Some(Err(SimFault::invalid("FindRecordings needs KeepAliveTime")));
                }
                let token = format!("search-{}", self.next_search);
                self.next_search += 1;
                self.searches.insert(token.clone(), false);
                Ok(format!(
                    r#"<tse:FindRecordingsResponse xmlns:tse="{}"><tse:SearchToken>{token}</tse:SearchToken></tse:FindRecordingsResponse>"#,
                    ns::TSE
                ))
            }
            (Some(ns::TSE), "GetRecordingSearchResults") => {
                let token = op.text_at(&["SearchToken"]).unwrap_or_default();
                match self.searches.get_mut(&token) {
                    None => Err(SimFault {
                        sender: true,
                        subcode: "InvalidToken",
                        reason: format!("no search {token:?}"),
                    }),
                    Some(done) => {
                        // Everything in one answer; later calls: Completed, empty.
                        let body = if *done {
                            String::new()
                        } else {
                            format!("<tt:RecordingInformation>{}</tt:RecordingInformation>", info())
                        };
                        *done = true;
                        Ok(format!(
                            r#"<tse:GetRecordingSearchResultsResponse xmlns:tse="{}" xmlns:tt="{}"><tse:ResultList><tt:SearchState>Completed</tt:SearchState>{body}</tse:ResultList></tse:GetRecordingSearchResultsResponse>"#,
                            ns::TSE,
                            ns::TT
                        ))
                    }
                }
            }
            (Some(ns::TSE), "EndSearch") => {
                let token = op.text_at(&["SearchToken"]).unwrap_or_default();
                match self.searches.remove(&token) {
                    None => Err(SimFault {
                        sender: true,
                        subcode: "InvalidToken",
                        reason: format!("no search {token:?}"),
                    }),
                    Some(_) => Ok(format!(
                        r#"<tse:EndSearchResponse xmlns:tse="{}"><tse:Endpoint>{}</tse:Endpoint></tse:EndSearchResponse>"#,
                        ns::TSE,
                        ts(now)
                    )),
                }
            }
            (Some(ns::TRP), "GetReplayUri") => token_ok(op, &["RecordingToken"]).and_then(|()| {
                let proto = op
                    .text_at(&["StreamSetup", "Transport", "Protocol"])
                    .unwrap_or_default();
                if proto != "RTSP" && proto != "TCP" {
                    return Err(SimFault::invalid(&format!(
                        "replay over {proto:?} is not offered; use RTSP"
                    )));
                }
                Ok(format!(
                    r#"<trp:GetReplayUriResponse xmlns:trp="{}"><trp:Uri>rtsp://{rtsp_authority}/cam{index}/replay/{RECORDING_TOKEN}</trp:Uri></trp:GetReplayUriResponse>"#,
                    ns::TRP
                ))
            }),
            _ => return None,
        };
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_replay_starts_at_a_keyframe_and_skips_gaps_marking_both_sides() {
        let mut r = SimRecording::new(at(0));
        r.add_gap(
            at(10) + Duration::milliseconds(300),
            at(12) + Duration::milliseconds(500),
        );
        let frames: Vec<ReplayFrame> = r
            .frames(at(5) + Duration::milliseconds(550), Some(at(15)), at(100))
            .collect();
        assert_eq!(frames[0].at, at(5), "starts at the keyframe before");
        assert!(frames[0].key);
        let before: Vec<_> = frames.iter().filter(|f| f.before_gap).collect();
        let after: Vec<_> = frames.iter().filter(|f| f.after_gap).collect();
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].at, at(10) - Duration::milliseconds(100));
        assert_eq!(after[0].at, at(13), "resumes on the next whole GOP");
        assert!(after[0].key);
        assert_eq!(
            frames.last().unwrap().at,
            at(15) - Duration::milliseconds(100)
        );
        // 5..10 s and 13..15 s at 10 fps.
        assert_eq!(frames.len(), 50 + 20);
        // Never past now.
        assert_eq!(r.frames(at(90), None, at(91)).count(), 10);
    }
}
