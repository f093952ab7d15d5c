#[warren_rpc::service(exchange = "x")]
trait Calc {
    async fn add(&self, a: i64, b: i64) -> i64;
}

#[warren_rpc::service]
trait Store {
    #[method(rename = "get")]
    async fn fetch(&self, key: String) -> String;
    async fn new(&self) -> u8;
    async fn receiver(self) -> u8;
}

fn main() {}
