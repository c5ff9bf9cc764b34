#[ferret::measure("a", name = "b{}")]
fn work() {}

fn main() {
    work();
}
