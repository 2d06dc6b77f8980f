//! A plain (non-fragmented) MP4 writer for a video track and an optional
//! audio track: `ftyp`, then
//! `mdat` filled as frames arrive, then `moov` with the sample tables when
//! the segment is finished. Frames are written as they come (length-
//! prefixed NAL units, as retina hands them over); nothing is decoded.
//!
//! Until `finish` the file has no `moov` and is not playable: a crash
//! loses at most the segment being written, which start-up reconciliation
//! discards.

use std::io::{Seek, SeekFrom, Write};

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 8);
    v.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 4);
    b.push(version);
    b.extend_from_slice(&flags.to_be_bytes()[1..]);
    b.extend_from_slice(body);
    bx(kind, &b)
}

fn u32s(vals: &[u32]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

#[derive(Debug, Clone, Copy)]
struct Sample {
    offset: u64,
    size: u32,
    duration: u32,
    sync: bool,
}

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video { width: u32, height: u32 },
    Audio,
}

struct Track {
    kind: Kind,
    sample_entry: Vec<u8>,
    timescale: u32,
    /// Duration given to the last sample (and to one after a jump).
    nominal: u32,
    samples: Vec<Sample>,
    /// Timestamp (in `timescale`) of the last sample, to derive durations.
    last_ts: Option<i64>,
}

impl Track {
    fn duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }
}

/// Movie timescale (mvhd, tkhd durations): milliseconds.
const MOVIE_TIMESCALE: u32 = 1000;

/// One segment being written: a video track and, when the camera sends
/// audio, an audio track.
pub struct Mp4Writer<W: Write + Seek> {
    out: W,
    tracks: Vec<Track>,
    mdat_start: u64,
    pos: u64,
}

impl<W: Write + Seek> Mp4Writer<W> {
    /// `sample_entry` is a complete `avc1`/`hvc1` box (retina builds it).
    pub fn new(
        mut out: W,
        sample_entry: Vec<u8>,
        (width, height): (u32, u32),
        timescale: u32,
    ) -> std::io::Result<Self> {
        let ftyp = bx(
            b"ftyp",
            &[
                b"isom".as_slice(),
                &0x200u32.to_be_bytes(),
                b"isomiso2avc1mp41",
            ]
            .concat(),
        );
        out.write_all(&ftyp)?;
        let mdat_start = ftyp.len() as u64;
        // mdat header; its size is patched in `finish`.
        out.write_all(&[0, 0, 0, 8, b'm', b'd', b'a', b't'])?;
        Ok(Self {
            out,
            tracks: vec![Track {
                kind: Kind::Video { width, height },
                sample_entry,
                timescale,
                nominal: timescale / 25,
                samples: Vec::new(),
                last_ts: None,
            }],
            mdat_start,
            pos: mdat_start + 8,
        })
    }

    /// Add an audio track (`mp4a` sample entry); returns its index for
    /// [`push_to`](Self::push_to). `frame_length` is the samples per frame
    /// (1024 for AAC).
    pub fn add_audio(&mut self, sample_entry: Vec<u8>, timescale: u32, frame_length: u32) -> usize {
        self.tracks.push(Track {
            kind: Kind::Audio,
            sample_entry,
            timescale,
            nominal: frame_length.max(1),
            samples: Vec::new(),
            last_ts: None,
        });
        self.tracks.len() - 1
    }

    /// Video samples so far.
    pub fn samples(&self) -> usize {
        self.tracks[0].samples.len()
    }

    /// Append one video frame with its timestamp (in the video timescale).
    pub fn push(&mut self, ts: i64, data: &[u8], sync: bool) -> std::io::Result<()> {
        self.push_to(0, ts, data, sync)
    }

    /// Append one sample to a track.
    pub fn push_to(
        &mut self,
        track: usize,
        ts: i64,
        data: &[u8],
        sync: bool,
    ) -> std::io::Result<()> {
        let Some(t) = self.tracks.get_mut(track) else {
            return Err(std::io::Error::other(format!("no track {track}")));
        };
        if let (Some(last), Some(prev)) = (t.last_ts, t.samples.last_mut()) {
            // A timestamp that goes back or jumps is not fatal: give the
            // previous sample a nominal duration instead.
            let d = ts - last;
            prev.duration = if d > 0 && d < i64::from(t.timescale) * 10 {
                d as u32
            } else {
                t.nominal
            };
        }
        self.out.write_all(data)?;
        t.samples.push(Sample {
            offset: self.pos,
            size: data.len() as u32,
            duration: t.nominal,
            sync,
        });
        self.pos += data.len() as u64;
        t.last_ts = Some(ts);
        Ok(())
    }

    /// Video duration so far, in the video timescale.
    pub fn duration(&self) -> u64 {
        self.tracks[0].duration()
    }

    /// Write `moov`, patch the `mdat` size, flush; returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        let mdat_size = self.pos - self.mdat_start;
        let moov = self.moov();
        self.out.write_all(&moov)?;
        self.out.seek(SeekFrom::Start(self.mdat_start))?;
        self.out.write_all(&(mdat_size as u32).to_be_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn moov(&self) -> Vec<u8> {
        let movie_ms =
            |t: &Track| t.duration() * u64::from(MOVIE_TIMESCALE) / u64::from(t.timescale.max(1));
        // Audio only counts when it has samples.
        let tracks: Vec<&Track> = self
            .tracks
            .iter()
            .filter(|t| matches!(t.kind, Kind::Video { .. }) || !t.samples.is_empty())
            .collect();
        let dur = tracks.iter().map(|t| movie_ms(t)).max().unwrap_or(0) as u32;
        let mut mvhd = u32s(&[0, 0, MOVIE_TIMESCALE, dur, 0x0001_0000]);
        mvhd.extend_from_slice(&0x0100u16.to_be_bytes());
        mvhd.extend_from_slice(&[0; 10]);
        mvhd.extend(u32s(&MATRIX));
        mvhd.extend_from_slice(&[0; 24]);
        mvhd.extend(u32s(&[tracks.len() as u32 + 1]));
        let mut moov = full(b"mvhd", 0, 0, &mvhd);
        for (i, t) in tracks.iter().enumerate() {
            moov.extend(self.trak(t, i as u32 + 1, movie_ms(t) as u32));
        }
        bx(b"moov", &moov)
    }

    fn trak(&self, t: &Track, id: u32, movie_dur: u32) -> Vec<u8> {
        let (w, h, volume, handler, name): (u32, u32, u16, &[u8; 4], &[u8]) = match t.kind {
            Kind::Video { width, height } => (width, height, 0, b"vide", b"camfleet video\0"),
            Kind::Audio => (0, 0, 0x0100, b"soun", b"camfleet audio\0"),
        };
        let mut tkhd = u32s(&[0, 0, id, 0, movie_dur, 0, 0]);
        tkhd.extend_from_slice(&[0, 0, 0, 0]); // layer, alternate group
        tkhd.extend_from_slice(&volume.to_be_bytes());
        tkhd.extend_from_slice(&[0, 0]); // reserved
        tkhd.extend(u32s(&MATRIX));
        tkhd.extend(u32s(&[w << 16, h << 16]));
        let mut mdhd = u32s(&[0, 0, t.timescale, t.duration() as u32]);
        mdhd.extend_from_slice(&0x55c4u16.to_be_bytes()); // "und"
        mdhd.extend_from_slice(&[0, 0]);
        let mut hdlr = u32s(&[0]);
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 12]);
        hdlr.extend_from_slice(name);
        // Sample tables.
        let mut stts: Vec<(u32, u32)> = Vec::new();
        for s in &t.samples {
            match stts.last_mut() {
                Some((n, d)) if *d == s.duration => *n += 1,
                _ => stts.push((1, s.duration)),
            }
        }
        let mut stts_b = u32s(&[stts.len() as u32]);
        for (n, d) in &stts {
            stts_b.extend(u32s(&[*n, *d]));
        }
        let n = t.samples.len() as u32;
        // One chunk per sample: simple and exact.
        let stsc = u32s(&[1, 1, 1, 1]);
        let mut stsz = u32s(&[0, n]);
        stsz.extend(t.samples.iter().flat_map(|s| s.size.to_be_bytes()));
        let big = self.pos > u64::from(u32::MAX);
        let (co_kind, co) = if big {
            let mut v = u32s(&[n]);
            v.extend(t.samples.iter().flat_map(|s| s.offset.to_be_bytes()));
            (b"co64", v)
        } else {
            let mut v = u32s(&[n]);
            v.extend(
                t.samples
                    .iter()
                    .flat_map(|s| (s.offset as u32).to_be_bytes()),
            );
            (b"stco", v)
        };
        let mut stsd = u32s(&[1]);
        stsd.extend_from_slice(&t.sample_entry);
        let mut stbl = full(b"stsd", 0, 0, &stsd);
        stbl.extend(full(b"stts", 0, 0, &stts_b));
        if matches!(t.kind, Kind::Video { .. }) {
            let sync: Vec<u32> = t
                .samples
                .iter()
                .enumerate()
                .filter(|(_, s)| s.sync)
                .map(|(i, _)| i as u32 + 1)
                .collect();
            let mut stss = u32s(&[sync.len() as u32]);
            stss.extend(u32s(&sync));
            stbl.extend(full(b"stss", 0, 0, &stss));
        }
        stbl.extend(full(b"stsc", 0, 0, &stsc));
        stbl.extend(full(b"stsz", 0, 0, &stsz));
        stbl.extend(full(co_kind, 0, 0, &co));
        let dinf = bx(
            b"dinf",
            &full(
                b"dref",
                0,
                0,
                &[u32s(&[1]), full(b"url ", 0, 1, &[])].concat(),
            ),
        );
        let media_header = match t.kind {
            Kind::Video { .. } => full(b"vmhd", 0, 1, &[0; 8]),
            Kind::Audio => full(b"smhd", 0, 0, &[0; 4]),
        };
        let minf = bx(b"minf", &[media_header, dinf, bx(b"stbl", &stbl)].concat());
        let mdia = bx(
            b"mdia",
            &[full(b"mdhd", 0, 0, &mdhd), full(b"hdlr", 0, 0, &hdlr), minf].concat(),
        );
        bx(b"trak", &[full(b"tkhd", 0, 3, &tkhd), mdia].concat())
    }
}

/// One track of a segment as camfleet wrote it.
#[derive(Debug, Clone)]
pub struct ReadTrack {
    pub video: bool,
    pub timescale: u32,
    pub sample_entry: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// (offset in the file, size, duration, sync)
    pub samples: Vec<(u64, u32, u32, bool)>,
}

fn children(b: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 8 <= b.len() {
        let size = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let kind = [b[i + 4], b[i + 5], b[i + 6], b[i + 7]];
        if size < 8 || i + size > b.len() {
            break;
        }
        out.push((kind, &b[i + 8..i + size]));
        i += size;
    }
    out
}

fn child<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(b)
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, v)| v)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

/// The tracks of an MP4 written by [`Mp4Writer`] (one sample per chunk).
/// Anything else is refused with a reason, never a panic.
pub fn read_tracks(file: &[u8]) -> Result<Vec<ReadTrack>, String> {
    let moov = children(file)
        .into_iter()
        .find(|(k, _)| k == b"moov")
        .map(|(_, v)| v)
        .ok_or("no moov box (an unfinished segment?)")?;
    let mut out = Vec::new();
    for (_, trak) in children(moov).into_iter().filter(|(k, _)| k == b"trak") {
        let bad = |what: &str| format!("track without {what}");
        let tkhd = child(trak, b"tkhd").ok_or_else(|| bad("tkhd"))?;
        let mdia = child(trak, b"mdia").ok_or_else(|| bad("mdia"))?;
        let mdhd = child(mdia, b"mdhd").ok_or_else(|| bad("mdhd"))?;
        let hdlr = child(mdia, b"hdlr").ok_or_else(|| bad("hdlr"))?;
        let stbl = child(mdia, b"minf")
            .and_then(|m| child(m, b"stbl"))
            .ok_or_else(|| bad("stbl"))?;
        let video = hdlr.get(8..12) == Some(b"vide");
        let timescale = be32(mdhd, 12).ok_or_else(|| bad("a timescale"))?;
        let stsd = child(stbl, b"stsd").ok_or_else(|| bad("stsd"))?;
        let sample_entry = children(stsd.get(8..).unwrap_or(&[]))
            .first()
            .map(|(k, body)| {
                let mut e = ((body.len() + 8) as u32).to_be_bytes().to_vec();
                e.extend_from_slice(k);
                e.extend_from_slice(body);
                e
            })
            .ok_or_else(|| bad("a sample entry"))?;
        let stsc = child(stbl, b"stsc").ok_or_else(|| bad("stsc"))?;
        if be32(stsc, 4) != Some(1) || be32(stsc, 12) != Some(1) {
            return Err("not one sample per chunk: not a camfleet segment".into());
        }
        let table = |kind: &[u8; 4]| child(stbl, kind);
        let stsz = table(b"stsz").ok_or_else(|| bad("stsz"))?;
        let n = be32(stsz, 8).ok_or_else(|| bad("a sample count"))? as usize;
        // Every sample has at least a 4-byte chunk offset in the file: a
        // count beyond that is a lie, and would size the tables below
        // (with a fixed sample size, nothing else bounds them).
        if n > file.len() / 4 {
            return Err(format!("{n} samples cannot fit in {} bytes", file.len()));
        }
        let fixed = be32(stsz, 4).unwrap_or(0);
        let mut sizes = Vec::with_capacity(n.min(1 << 20));
        for i in 0..n {
            sizes.push(if fixed != 0 {
                fixed
            } else {
                be32(stsz, 12 + 4 * i).ok_or("stsz cut short")?
            });
        }
        let offsets: Vec<u64> = if let Some(co) = table(b"stco") {
            (0..n)
                .map(|i| be32(co, 8 + 4 * i).map(u64::from))
                .collect::<Option<_>>()
                .ok_or("stco cut short")?
        } else {
            let co = table(b"co64").ok_or_else(|| bad("chunk offsets"))?;
            (0..n)
                .map(|i| {
                    co.get(8 + 8 * i..16 + 8 * i)
                        .map(|x| u64::from_be_bytes(x.try_into().unwrap_or([0; 8])))
                })
                .collect::<Option<_>>()
                .ok_or("co64 cut short")?
        };
        let stts = table(b"stts").ok_or_else(|| bad("stts"))?;
        let mut durations = Vec::with_capacity(n.min(1 << 20));
        for e in 0..be32(stts, 4).unwrap_or(0) as usize {
            let count = be32(stts, 8 + 8 * e).ok_or("stts cut short")?;
            let d = be32(stts, 12 + 8 * e).ok_or("stts cut short")?;
            for _ in 0..count {
                if durations.len() >= n {
                    break;
                }
                durations.push(d);
            }
        }
        durations.resize(n, 0);
        let sync: Option<std::collections::HashSet<u32>> = table(b"stss").map(|t| {
            // Up to the box's end, whatever count it claims (a count of
            // billions walked billions of missing entries: 15 s per file).
            (0..be32(t, 4).unwrap_or(0) as usize)
                .map_while(|i| be32(t, 8 + 4 * i))
                .collect()
        });
        let samples = (0..n)
            .map(|i| {
                let is_sync = sync.as_ref().is_none_or(|s| s.contains(&(i as u32 + 1)));
                (offsets[i], sizes[i], durations[i], is_sync)
            })
            .collect::<Vec<_>>();
        for &(off, size, _, _) in &samples {
            if off.saturating_add(u64::from(size)) > file.len() as u64 {
                return Err("a sample lies outside the file".into());
            }
        }
        out.push(ReadTrack {
            video,
            timescale,
            sample_entry,
            width: be32(tkhd, 76).unwrap_or(0) >> 16,
            height: be32(tkhd, 80).unwrap_or(0) >> 16,
            samples,
        });
    }
    if !out.iter().any(|t| t.video) {
        return Err("no video track".into());
    }
    Ok(out)
}

/// Join segments into one MP4: `parts` are (segment bytes, its start in
/// ms since the epoch), in time order; only samples of `[from_ms, to_ms)`
/// are kept, from the keyframe at or before `from_ms`. Gaps between
/// segments are closed up (the file plays them back to back). All parts
/// must share the video sample entry (same codec settings).
pub struct Concat<W: Write + Seek> {
    writer: Option<Mp4Writer<W>>,
    video_entry: Vec<u8>,
    audio: Option<(usize, Vec<u8>)>,
    /// Running timestamps per track (video, audio), in their timescales.
    ts: [i64; 2],
    pub samples: u64,
}

impl<W: Write + Seek> Concat<W> {
    pub fn new() -> Self {
        Self {
            writer: None,
            video_entry: Vec::new(),
            audio: None,
            ts: [0, 0],
            samples: 0,
        }
    }

    pub fn add(
        &mut self,
        out: impl FnOnce() -> std::io::Result<W>,
        file: &[u8],
        start_ms: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(), String> {
        let tracks = read_tracks(file)?;
        let video = tracks.iter().find(|t| t.video).ok_or("no video track")?;
        // The video samples that overlap [from_ms, to_ms), started from
        // the last keyframe at or before the first of them.
        let ms = |d: u32| f64::from(d) * 1000.0 / f64::from(video.timescale.max(1));
        let mut starts = Vec::with_capacity(video.samples.len());
        let mut t = start_ms as f64;
        for s in &video.samples {
            starts.push(t);
            t += ms(s.2);
        }
        let overlaps = |i: usize| {
            starts[i] + ms(video.samples[i].2) > from_ms as f64 && starts[i] < to_ms as f64
        };
        let Some(lo) = (0..starts.len()).find(|&i| overlaps(i)) else {
            return Ok(());
        };
        let last = (0..starts.len())
            .rev()
            .find(|&i| overlaps(i))
            .map_or(lo, |i| i)
            + 1;
        let Some(first) = (0..=lo)
            .rev()
            .find(|&i| video.samples[i].3)
            .or_else(|| (lo..last).find(|&i| video.samples[i].3))
        else {
            return Ok(()); // no keyframe to start from
        };
        let span_ms = |from: usize, to: usize| -> f64 {
            video.samples[from..to]
                .iter()
                .map(|s| f64::from(s.2) * 1000.0 / f64::from(video.timescale.max(1)))
                .sum()
        };
        let (kept_from_ms, kept_to_ms) = (
            start_ms as f64 + span_ms(0, first),
            start_ms as f64 + span_ms(0, last),
        );
        match &self.writer {
            None => {
                self.writer = Some(
                    Mp4Writer::new(
                        out().map_err(|e| e.to_string())?,
                        video.sample_entry.clone(),
                        (video.width, video.height),
                        video.timescale,
                    )
                    .map_err(|e| e.to_string())?,
                );
                self.video_entry = video.sample_entry.clone();
            }
            Some(_) if video.sample_entry != self.video_entry => {
                return Err(
                    "the camera's video settings change inside the range; export it in parts"
                        .into(),
                );
            }
            Some(_) => {}
        }
        let w = self.writer.as_mut().ok_or("no writer")?;
        for &(off, size, d, sync) in &video.samples[first..last] {
            let data = &file[off as usize..off as usize + size as usize];
            w.push(self.ts[0], data, sync).map_err(|e| e.to_string())?;
            self.ts[0] += i64::from(d);
            self.samples += 1;
        }
        if let Some(a) = tracks.iter().find(|t| !t.video) {
            let track = match &self.audio {
                Some((i, entry)) if *entry == a.sample_entry => Some(*i),
                Some(_) => None, // audio settings changed: video only from here
                None => {
                    let i = w.add_audio(a.sample_entry.clone(), a.timescale, 1024);
                    self.audio = Some((i, a.sample_entry.clone()));
                    Some(i)
                }
            };
            if let Some(track) = track {
                // Audio samples that fall inside the kept video.
                self.ts[1] = self.ts[1].max(0);
                let mut at = start_ms as f64;
                for &(off, size, d, _) in &a.samples {
                    if at >= kept_from_ms && at < kept_to_ms {
                        let data = &file[off as usize..off as usize + size as usize];
                        w.push_to(track, self.ts[1], data, true)
                            .map_err(|e| e.to_string())?;
                        self.ts[1] += i64::from(d);
                    }
                    at += f64::from(d) * 1000.0 / f64::from(a.timescale.max(1));
                }
            }
        }
        Ok(())
    }

    /// Finish the file; None when no sample was in the range.
    pub fn finish(self) -> Result<Option<W>, String> {
        match self.writer {
            Some(w) if self.samples > 0 => w.finish().map(Some).map_err(|e| e.to_string()),
            _ => Ok(None),
        }
    }
}

impl<W: Write + Seek> Default for Concat<W> {
    fn default() -> Self {
        Self::new()
    }
}

/// The top-level boxes of a file: (kind, size). For checks and the scrub.
pub fn top_boxes(b: &[u8]) -> Vec<([u8; 4], u64)> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 8 <= b.len() {
        let size = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64;
        let kind = [b[i + 4], b[i + 5], b[i + 6], b[i + 7]];
        if size < 8 {
            break;
        }
        out.push((kind, size));
        i += size as usize;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start_key: bool, frames: i64, audio: bool) -> Vec<u8> {
        let entry = bx(b"avc1", &[0u8; 78]);
        let mut w =
            Mp4Writer::new(std::io::Cursor::new(Vec::new()), entry, (640, 360), 90_000).unwrap();
        let a = audio.then(|| w.add_audio(bx(b"mp4a", &[0u8; 28]), 16_000, 1024));
        for i in 0..frames {
            let key = (i % 10 == 0) && (start_key || i > 0);
            w.push(i * 9000, &[0, 0, 0, 2, 0x65, i as u8], key).unwrap();
            if let Some(a) = a {
                w.push_to(a, i * 1600, &[0x21, i as u8], true).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn segments_read_back_and_join_trimmed_to_the_range() {
        let one = segment(true, 30, true); // 3 s at 10 fps
        let tracks = read_tracks(&one).unwrap();
        assert_eq!(tracks.len(), 2);
        assert!(tracks[0].video && !tracks[1].video);
        assert_eq!((tracks[0].width, tracks[0].height), (640, 360));
        assert_eq!(tracks[0].samples.len(), 30);
        assert_eq!(tracks[0].samples.iter().filter(|s| s.3).count(), 3);
        assert_eq!(
            &one[tracks[0].samples[5].0 as usize..][..6],
            &[0, 0, 0, 2, 0x65, 5]
        );
        // Two segments, 10 s apart; keep 1.5 s .. 11.2 s.
        let two = segment(true, 30, true);
        let mut c = Concat::new();
        c.add(
            || Ok(std::io::Cursor::new(Vec::new())),
            &one,
            0,
            1500,
            11_200,
        )
        .unwrap();
        c.add(|| unreachable!(), &two, 10_000, 1500, 11_200)
            .unwrap();
        let out = c.finish().unwrap().unwrap().into_inner();
        let t = read_tracks(&out).unwrap();
        // From the keyframe at 1.0 s: 20 frames; then 0..1.2 s: 12 frames.
        assert_eq!(t[0].samples.len(), 32);
        assert!(t[0].samples[0].3, "starts at a keyframe");
        assert!(!t[1].samples.is_empty(), "audio kept");
        // A range with nothing in it gives no file.
        let mut none: Concat<std::io::Cursor<Vec<u8>>> = Concat::new();
        none.add(|| unreachable!(), &one, 0, 50_000, 60_000)
            .unwrap();
        assert!(none.finish().unwrap().is_none());
        // Garbage is refused, not panicked on.
        assert!(read_tracks(&one[..200]).is_err());
        assert!(read_tracks(b"\0\0\0\x08moov").is_err());
    }

    #[test]
    fn a_segment_has_ftyp_mdat_moov_with_every_sample() {
        let entry = bx(b"avc1", &[0u8; 78]);
        let mut w =
            Mp4Writer::new(std::io::Cursor::new(Vec::new()), entry, (640, 360), 90_000).unwrap();
        for i in 0..50i64 {
            w.push(i * 3600, &[0, 0, 0, 4, 0x65, 1, 2, 3], i % 25 == 0)
                .unwrap();
        }
        assert_eq!(w.duration(), 50 * 3600);
        let file = w.finish().unwrap().into_inner();
        let boxes = top_boxes(&file);
        let kinds: Vec<&[u8]> = boxes.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(kinds, [b"ftyp".as_slice(), b"mdat", b"moov"]);
        assert_eq!(boxes[1].1, 8 + 50 * 8, "mdat holds every frame");
        assert_eq!(boxes.iter().map(|(_, s)| s).sum::<u64>(), file.len() as u64);
    }
}
