struct Opaque;

#[warren_rpc::service]
trait Store {
    async fn get(&self, key: String) -> Result<Opaque, warren_rpc::Status>;
}

fn main() {}
