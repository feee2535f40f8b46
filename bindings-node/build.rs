//! Generates the napi glue (symbol exports, type definitions) for the addon.
fn main() {
    napi_build::setup();
}
