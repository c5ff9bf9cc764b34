struct Db;

#[ferret::measure(err)]
impl Db {
    fn query(&self) {}
}

fn main() {}
