//! Imports an ONNX file and prints the graph, its parameter count and the import notes:
//! `cargo run -p slimbench-onnx --example onnx_summary -- model.onnx`.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: onnx_summary <model.onnx>");
        std::process::exit(2);
    };
    match slimbench_onnx::import(std::path::Path::new(&path)) {
        Ok(m) => {
            println!("{} (opset {}, {})", m.graph, m.opset, m.producer);
            println!("{}", m.graph.summary().expect("imported graphs check"));
            println!("parameters: {}", m.graph.param_count().expect("imported graphs check"));
            for n in &m.notes {
                println!("note: {n}");
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(if e.is_unsupported() { 2 } else { 1 });
        }
    }
}
