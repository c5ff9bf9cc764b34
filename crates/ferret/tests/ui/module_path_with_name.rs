#[ferret::measure("load", module_path)]
fn load() {}

fn main() {
    load();
}
