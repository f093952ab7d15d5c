#[warren_rpc::service]
trait Echo<T> {
    async fn echo(&self, value: T) -> T;
}

fn main() {}
