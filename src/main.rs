fn main() {
    println!("oneha");
}
