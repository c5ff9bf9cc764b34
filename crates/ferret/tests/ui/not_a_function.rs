#[ferret::measure]
struct Work;

fn main() {
    let _ = Work;
}
