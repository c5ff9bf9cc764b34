#[ferret::measure(fast)]
fn work() {}

fn main() {
    work();
}
