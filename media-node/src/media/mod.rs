//! The media plane's pure parts: G.711 codecs, WAV prompts and recordings, RTP and telephone
//! events, DTMF in SIP INFO, tones Dialtone synthesises, SDP offer/answer. The relay, the
//! pacing of prompts every 20 ms and the port pool wrap these at the edge (`node`).

pub mod dtmf;
pub mod g711;
pub mod rtp;
pub mod sdp;
pub mod tone;
pub mod wav;
