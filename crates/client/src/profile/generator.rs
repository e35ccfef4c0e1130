//! A telemetry field's value from one message to the next.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::Generator;

/// The running state of one field's generator.
#[derive(Clone, Debug)]
pub struct FieldState {
    generator: Generator,
    /// The random walk's position.
    position: f64,
    /// Messages generated so far (the sine's phase).
    ticks: u64,
}

impl FieldState {
    pub fn new(generator: &Generator) -> FieldState {
        let position = match generator {
            Generator::RandomWalk { start, .. } => *start,
            _ => 0.0,
        };
        FieldState {
            generator: generator.clone(),
            position,
            ticks: 0,
        }
    }

    /// The value for the next message.
    pub fn next(&mut self, rng: &mut StdRng) -> Value {
        let tick = self.ticks;
        self.ticks += 1;
        match &self.generator {
            Generator::RandomWalk {
                step,
                min,
                max,
                decimals,
                ..
            } => {
                let value = self.position;
                let delta = if *step > 0.0 {
                    rng.random_range(-*step..=*step)
                } else {
                    0.0
                };
                self.position = (value + delta).clamp(*min, *max);
                number(value, *decimals)
            }
            Generator::Sine {
                min,
                max,
                period,
                decimals,
            } => {
                let phase = (tick % period) as f64 / *period as f64 * std::f64::consts::TAU;
                let mid = (min + max) / 2.0;
                number(mid + (max - min) / 2.0 * phase.sin(), *decimals)
            }
            Generator::Counter { start, step } => {
                json!(start.saturating_add((tick as i64).saturating_mul(*step)))
            }
            Generator::Enum { values } => values[rng.random_range(0..values.len())].clone(),
            Generator::Constant { value } => value.clone(),
        }
    }
}

/// A rounded number; whole numbers when `decimals` is 0, as JSON integers.
fn number(x: f64, decimals: u32) -> Value {
    if decimals == 0 {
        return json!(x.round() as i64);
    }
    let f = 10f64.powi(decimals as i32);
    json!((x * f).round() / f)
}
