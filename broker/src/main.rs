fn main() {
    println!("broker: not yet");
}
