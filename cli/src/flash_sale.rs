//! `flash-sale status | dead-letters list | replay | drop`.

use keygate::flash_sale::{Entry, FlashSale};
use serde::Serialize;

use crate::args::{DeadLettersCommand, FlashSaleCommand, SaleOptions};
use crate::confirm::confirm;
use crate::connect::{Target, connect};
use crate::error::{CliError, CliResult};
use crate::output::{self, Table};

/// The most dead letters read from a shard to find a voucher's (the consumer keeps 10,000
/// per shard by default).
const DEAD_LETTERS_READ: usize = 100_000;

/// Runs a `flash-sale` command.
pub async fn run(command: FlashSaleCommand, json: bool, yes: bool) -> CliResult {
    match command {
        FlashSaleCommand::Status { voucher, options } => status(voucher, &options, json).await,
        FlashSaleCommand::DeadLetters(DeadLettersCommand::List {
            voucher,
            limit,
            options,
        }) => list(voucher, limit, &options, json).await,
        FlashSaleCommand::DeadLetters(DeadLettersCommand::Replay {
            voucher,
            id,
            options,
        }) => replay(voucher, &id, &options, json, yes).await,
        FlashSaleCommand::DeadLetters(DeadLettersCommand::Drop {
            voucher,
            id,
            options,
        }) => drop_one(voucher, &id, &options, json, yes).await,
    }
}

fn sale(target: &Target, options: &SaleOptions) -> FlashSale {
    FlashSale::new(target.store.clone()).with_shards(options.shards)
}

fn no_sale(voucher: u64, target: &Target) -> CliError {
    CliError::new(format!(
        "no flash sale for voucher {voucher} on {} (wrong server or --shards?)",
        target.place
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusOut {
    voucher_id: u64,
    shard: u64,
    stock: i64,
    buyers: u64,
    orders: u64,
    dead_letters: u64,
    groups: Vec<GroupOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupOut {
    name: String,
    lag: Option<u64>,
    pending: u64,
    last_delivered: String,
    consumers: Vec<ConsumerOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConsumerOut {
    name: String,
    pending: u64,
    idle_ms: u64,
}

async fn status(voucher: u64, options: &SaleOptions, json: bool) -> CliResult {
    let target = connect().await?;
    let Some(status) = sale(&target, options).status(voucher).await? else {
        return Err(no_sale(voucher, &target));
    };
    let out = StatusOut {
        voucher_id: status.voucher_id,
        shard: status.shard,
        stock: status.stock,
        buyers: status.buyers,
        orders: status.streams.orders,
        dead_letters: status.streams.dead_letters,
        groups: status
            .groups
            .into_iter()
            .map(|g| GroupOut {
                name: g.name,
                lag: g.lag,
                pending: g.pending,
                last_delivered: g.last_delivered,
                consumers: g
                    .consumers
                    .into_iter()
                    .map(|c| ConsumerOut {
                        name: c.name,
                        pending: c.pending,
                        idle_ms: c.idle_ms,
                    })
                    .collect(),
            })
            .collect(),
    };
    if json {
        return output::json(&out);
    }
    let mut summary = Table::new(&[
        "VOUCHER",
        "SHARD",
        "STOCK",
        "BUYERS",
        "ORDERS",
        "DEAD LETTERS",
    ]);
    summary.row(vec![
        out.voucher_id.to_string(),
        out.shard.to_string(),
        out.stock.to_string(),
        out.buyers.to_string(),
        out.orders.to_string(),
        out.dead_letters.to_string(),
    ]);
    summary.print()?;
    println!();
    let mut groups = Table::new(&["GROUP", "CONSUMER", "LAG", "PENDING", "IDLE"]);
    for g in &out.groups {
        let lag = g.lag.map_or_else(|| "?".to_owned(), |lag| lag.to_string());
        groups.row(vec![
            g.name.clone(),
            "*".to_owned(),
            lag,
            g.pending.to_string(),
            String::new(),
        ]);
        for c in &g.consumers {
            groups.row(vec![
                g.name.clone(),
                c.name.clone(),
                String::new(),
                c.pending.to_string(),
                output::duration_ms(c.idle_ms),
            ]);
        }
    }
    if out.groups.is_empty() {
        println!("no consumer group reads the orders stream yet");
        return Ok(());
    }
    groups.print()
}

/// A dead letter as printed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeadLetterOut {
    id: String,
    order_id: Option<String>,
    user_id: Option<String>,
    deliveries: u64,
    error: Option<String>,
    entry_id: Option<String>,
}

fn field(entry: &Entry, name: &str) -> Option<String> {
    entry
        .fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

impl From<&Entry> for DeadLetterOut {
    fn from(entry: &Entry) -> Self {
        Self {
            id: entry.id.clone(),
            order_id: field(entry, "orderId"),
            user_id: field(entry, "userId"),
            deliveries: entry.deliveries,
            error: field(entry, "error"),
            entry_id: field(entry, "entryId"),
        }
    }
}

/// The dead letters of `voucher` in its shard, oldest first.
async fn dead_letters_of(sale: &FlashSale, voucher: u64) -> CliResult<Vec<Entry>> {
    let voucher_text = voucher.to_string();
    Ok(sale
        .dead_letters(sale.shard_of(voucher), DEAD_LETTERS_READ)
        .await?
        .into_iter()
        .filter(|e| field(e, "voucherId").as_deref() == Some(voucher_text.as_str()))
        .collect())
}

async fn list(voucher: u64, limit: usize, options: &SaleOptions, json: bool) -> CliResult {
    let target = connect().await?;
    let sale = sale(&target, options);
    let letters: Vec<DeadLetterOut> = dead_letters_of(&sale, voucher)
        .await?
        .iter()
        .take(limit)
        .map(DeadLetterOut::from)
        .collect();
    if json {
        return output::json(&letters);
    }
    let mut table = Table::new(&["ID", "ORDER", "USER", "DELIVERIES", "ERROR"]);
    for l in &letters {
        table.row(vec![
            l.id.clone(),
            l.order_id.clone().unwrap_or_default(),
            l.user_id.clone().unwrap_or_default(),
            l.deliveries.to_string(),
            l.error.clone().unwrap_or_default(),
        ]);
    }
    table.print()?;
    eprintln!("{} dead letter(s) of voucher {voucher}", letters.len());
    Ok(())
}

/// Checks that the sale and the dead letter exist, and asks.
async fn prepare(
    sale: &FlashSale,
    target: &Target,
    voucher: u64,
    id: &str,
    action: &str,
    yes: bool,
) -> CliResult {
    if sale.stock(voucher).await?.is_none() {
        return Err(no_sale(voucher, target));
    }
    let letters = dead_letters_of(sale, voucher).await?;
    let Some(letter) = letters.iter().find(|e| e.id == id) else {
        return Err(CliError::new(format!(
            "voucher {voucher} has no dead letter {id} (see `flash-sale dead-letters list {voucher}`)"
        )));
    };
    let order = field(letter, "orderId").unwrap_or_else(|| "?".to_owned());
    confirm(
        &format!(
            "{action} dead letter {id} (order {order}) of voucher {voucher} on {}",
            target.place
        ),
        yes,
    )
}

async fn replay(voucher: u64, id: &str, options: &SaleOptions, json: bool, yes: bool) -> CliResult {
    let target = connect().await?;
    let sale = sale(&target, options);
    prepare(&sale, &target, voucher, id, "replay", yes).await?;
    let Some(entry) = sale.replay_dead_letter(voucher, id).await? else {
        return Err(CliError::new(format!(
            "dead letter {id} of voucher {voucher} was replayed or dropped meanwhile"
        )));
    };
    if json {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Replayed<'a> {
            replayed: &'a str,
            entry_id: &'a str,
        }
        return output::json(&Replayed {
            replayed: id,
            entry_id: &entry,
        });
    }
    println!("replayed dead letter {id}: order stream entry {entry}");
    Ok(())
}

async fn drop_one(
    voucher: u64,
    id: &str,
    options: &SaleOptions,
    json: bool,
    yes: bool,
) -> CliResult {
    let target = connect().await?;
    let sale = sale(&target, options);
    prepare(&sale, &target, voucher, id, "drop", yes).await?;
    if !sale.drop_dead_letter(voucher, id).await? {
        return Err(CliError::new(format!(
            "dead letter {id} of voucher {voucher} was replayed or dropped meanwhile"
        )));
    }
    if json {
        #[derive(Serialize)]
        struct Dropped<'a> {
            dropped: &'a str,
        }
        return output::json(&Dropped { dropped: id });
    }
    println!("dropped dead letter {id}");
    Ok(())
}
