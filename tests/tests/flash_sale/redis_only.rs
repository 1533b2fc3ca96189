use std::time::Duration;

use keygate::UserId;
use keygate::flash_sale::{FlashSale, OrderConsumer, OrderOutcome, SaleWindow};
use keygate_tests::eventually;
use keygate_tests::fixtures::Backend;

use crate::suite::{Recorder, fast};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_survives_a_redis_that_restarted_empty() {
    let mut b = Backend::redis().await;
    let sale = FlashSale::from_shared(b.flash_sale());
    let recorder = Recorder::default();
    let consumer = OrderConsumer::new(&sale, recorder.clone(), fast()).spawn();
    sale.load(1, 10, SaleWindow::default()).await.unwrap();
    sale.order(1, &UserId::from(1u64)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || recorder.ids().await.len()
            == 1)
        .await
    );

    // The restart loses the stream and its consumer group.
    if let Backend::Redis(_, server) = &mut b {
        server.restart();
    }
    let reloaded = eventually(Duration::from_secs(10), async || {
        sale.load(1, 10, SaleWindow::default()).await.is_ok()
    })
    .await;
    assert!(reloaded);
    let ordered = sale.order(1, &UserId::from(2u64)).await.unwrap();
    assert!(
        matches!(ordered, OrderOutcome::Ordered { .. }),
        "the reloaded sale takes orders"
    );
    let second_user_seen = async || recorder.seen.lock().await.iter().any(|o| o.user_id == "2");
    assert!(
        eventually(Duration::from_secs(15), second_user_seen).await,
        "the consumer recreated its group and processed the new order"
    );
    consumer.shutdown().await;
}
