//! Lua scripts: `EVALSHA`, falling back to `EVAL` with the source when the node does not
//! know the script yet.
//!
//! Unlike `SCRIPT LOAD` (which a cluster client sends to every node, and which fails while
//! any node is down), `EVAL` goes only to the node of the script's keys, so a script runs
//! as soon as that node answers: after a restart, a failover or on a new node.

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, ServerErrorKind, ToRedisArgs};

/// A Lua script kept in a file of its own, hashed once.
pub(crate) struct LuaScript {
    source: &'static str,
    hash: String,
}

impl LuaScript {
    pub(crate) fn new(source: &'static str) -> Self {
        Self {
            source,
            hash: redis::Script::new(source).get_hash().to_owned(),
        }
    }

    /// The script's text.
    pub(crate) fn source(&self) -> &'static str {
        self.source
    }

    /// An invocation to fill with keys and arguments.
    pub(crate) fn prepare_invoke(&self) -> Invocation<'_> {
        Invocation {
            script: self,
            keys: 0,
            words: Words::default(),
        }
    }
}

/// One call of a script: its keys (all in one hash slot), then its arguments.
pub(crate) struct Invocation<'a> {
    script: &'a LuaScript,
    /// How many of the words are keys (they come first).
    keys: usize,
    words: Words,
}

/// Keys and arguments in one buffer: two allocations per call, however many there are.
#[derive(Default)]
struct Words {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Words {
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start..end])
    }
}

impl redis::RedisWrite for Words {
    fn write_arg(&mut self, arg: &[u8]) {
        self.bytes.extend_from_slice(arg);
        self.ends.push(self.bytes.len());
    }

    fn writer_for_next_arg(&mut self) -> impl std::io::Write + '_ {
        WordWriter { words: self }
    }
}

/// Writes one word; it ends when the writer is dropped.
struct WordWriter<'a> {
    words: &'a mut Words,
}

impl std::io::Write for WordWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.words.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for WordWriter<'_> {
    fn drop(&mut self) {
        self.words.ends.push(self.words.bytes.len());
    }
}

impl Invocation<'_> {
    /// Adds a key (`KEYS[n]`), before the arguments whatever the order of the calls.
    pub(crate) fn key(&mut self, key: impl ToRedisArgs) -> &mut Self {
        if self.keys == self.words.ends.len() {
            key.write_redis_args(&mut self.words);
            self.keys = self.words.ends.len();
        } else {
            // Arguments came first: set them aside, add the key, put them back.
            let start = self.keys.checked_sub(1).map_or(0, |i| self.words.ends[i]);
            let args = self.words.bytes.split_off(start);
            let arg_ends: Vec<usize> = self.words.ends.drain(self.keys..).collect();
            key.write_redis_args(&mut self.words);
            self.keys = self.words.ends.len();
            let base = self.words.bytes.len();
            self.words.bytes.extend_from_slice(&args);
            self.words
                .ends
                .extend(arg_ends.into_iter().map(|end| end - start + base));
        }
        self
    }

    /// Adds an argument (`ARGV[n]`).
    pub(crate) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        arg.write_redis_args(&mut self.words);
        self
    }

    fn command(&self, name: &str, script: &str) -> Cmd {
        // Sized up front: growing it argument by argument costs a copy each time.
        let mut cmd = Cmd::with_capacity(
            3 + self.words.ends.len(),
            name.len() + script.len() + 20 + self.words.bytes.len(),
        );
        cmd.arg(name).arg(script).arg(self.keys);
        for word in self.words.iter() {
            cmd.arg(word);
        }
        cmd
    }

    /// Runs the script on the node of its keys.
    pub(crate) async fn invoke_async<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        match self
            .command("EVALSHA", &self.script.hash)
            .query_async(conn)
            .await
        {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.command("EVAL", self.script.source)
                    .query_async(conn)
                    .await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(invocation: &Invocation<'_>) -> Vec<String> {
        invocation
            .words
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect()
    }

    #[test]
    fn keys_come_before_arguments_whatever_the_order_of_the_calls() {
        let script = LuaScript::new("return 1");
        let mut invocation = script.prepare_invoke();
        invocation.key("k1").arg(7).arg("x").key("k2").arg(8);
        assert_eq!(invocation.keys, 2);
        assert_eq!(words(&invocation), ["k1", "k2", "7", "x", "8"]);
        let mut empty_args = script.prepare_invoke();
        empty_args.arg("").key("k");
        assert_eq!(words(&empty_args), ["k", ""]);
    }
}
