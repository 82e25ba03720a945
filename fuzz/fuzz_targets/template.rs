//! Any text as a template over a fixed set of params, as free text and as a typed field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::scenario::{Dur, ParamValue, Params, Renderer, Tpl};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut p = Params::new();
    p.insert("loss".into(), ParamValue::Int(12));
    p.insert("ratio".into(), ParamValue::Float(0.5));
    p.insert("victim".into(), ParamValue::Str("backend".into()));
    p.insert("on".into(), ParamValue::Bool(true));
    let r = Renderer::new(&p);
    let _ = r.text(&text);
    let _ = r.value::<f64>(&Tpl::Expr(text.to_string()));
    let _ = r.value::<Dur>(&Tpl::Expr(text.to_string()));
    let _ = r.value::<u16>(&Tpl::Expr(text.to_string()));
});
