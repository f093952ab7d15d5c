struct Opaque;

#[warren_rpc::service]
trait Store {
    async fn put(&self, key: String, value: Opaque) -> bool;
}

fn main() {}
