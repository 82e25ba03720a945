//! Seals JSON from stdin to an instructor's public key, as a certification lab seals what it
//! drew; anyone holding the public key can do the same, which is why grading never trusts
//! what is sealed. Used to write the golden bad-input bundles (tests/bad-inputs/make-cases.py).
//!
//!     cargo run -p sandbox --example seal -- instructor.pub < facts.json > sealed.age

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(public) = std::env::args_os().nth(1) else {
        eprintln!("usage: seal <instructor.pub> < facts.json");
        return ExitCode::from(2);
    };
    let sealed = sandbox::cert::InstructorPublic::load(std::path::Path::new(&public))
        .map_err(|e| e.to_string())
        .and_then(|public| {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| e.to_string())?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| e.to_string())?;
            sandbox::cert::seal_json(&public, &value).map_err(|e| e.to_string())
        });
    match sealed {
        Ok(armored) => {
            print!("{armored}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("seal: {e}");
            ExitCode::from(2)
        }
    }
}
