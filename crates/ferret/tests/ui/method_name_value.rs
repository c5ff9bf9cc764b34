struct Db;

#[ferret::measure]
impl Db {
    #[measure = "q"]
    fn query(&self) {}
}

fn main() {}
