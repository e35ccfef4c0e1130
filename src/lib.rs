//! hubtui: a terminal explorer for Azure IoT Hub that carries its own local IoT Hub.
//!
//! Layers (arrows point from user to used, nothing points upward):
//! `ui`/`cli` → `app` → `client` → `iothub` ← `hub`. `iothub` is pure protocol
//! model; `hub` is the local IoT Hub and uses `iothub` only. `ws_io` (a WebSocket as
//! a byte stream) sits beside `iothub`: protocol-neutral, used by `client` and `hub`.

pub mod app;
pub mod cli;
pub mod client;
pub mod hub;
pub mod iothub;
pub mod ui;
pub mod ws_io;
