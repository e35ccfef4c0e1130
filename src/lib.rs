//! hubtui: a terminal explorer for Azure IoT Hub that carries its own local IoT Hub.
//!
//! Layers (arrows point from user to used, nothing points upward):
//! `ui`/`cli` → `app` → `client` → `iothub` ← `hub`. `iothub` is pure protocol
//! model; `hub` is the local IoT Hub and uses `iothub` only. `ws_io` (a WebSocket as
//! a byte stream) sits beside `iothub`: protocol-neutral, used by `client` and `hub`.

//!
//! `iothub`, `hub`, `client` and `ws_io` are crates of their own (crates/), so the
//! compiler keeps those arrows; this package holds `app`, `ui` and `cli` on top and
//! re-exports the layers below for tests, benches and the fuzz targets.

pub mod app;
pub mod cli;
pub mod ui;

pub use ::client;
pub use ::hub;
pub use ::iothub;
pub use ::ws_io;
