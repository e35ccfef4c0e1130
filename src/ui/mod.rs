//! Explorer views, widgets, theme and the terminal loop (lands with the explorer).
