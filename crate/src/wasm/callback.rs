//! [`CallbackSink`]: the output as a plain JS object of callbacks.

use super::io;
use crate::error::{Error, Result};
use crate::sink::Sink;
use async_trait::async_trait;
use js_sys::{Array, Function, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// A sink over any JS object with `writeAt(offset, Uint8Array)`, `setLength(len)` and
/// `finish()` (each may return a promise): for node, and for pages with their own storage.
pub struct CallbackSink {
    target: JsValue,
}

impl CallbackSink {
    pub fn new(target: JsValue) -> Self {
        CallbackSink { target }
    }

    async fn call(&self, method: &str, args: &[JsValue]) -> Result<()> {
        let err = |e: JsValue| Error::io(format!("writing the output: {}", io::js_message(&e)));
        let f = Reflect::get(&self.target, &method.into())
            .map_err(err)?
            .dyn_into::<Function>()
            .map_err(|_| Error::invalid(format!("the output has no {method} method")))?;
        let result = f
            .apply(&self.target, &args.iter().collect::<Array>())
            .map_err(err)?;
        if let Some(p) = result.dyn_ref::<js_sys::Promise>() {
            JsFuture::from(p.clone()).await.map_err(err)?;
        }
        Ok(())
    }
}

#[async_trait(?Send)]
impl Sink for CallbackSink {
    async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let chunk: JsValue = Uint8Array::from(data).into();
        self.call("writeAt", &[(offset as f64).into(), chunk]).await
    }
    async fn set_len(&mut self, len: u64) -> Result<()> {
        self.call("setLength", &[(len as f64).into()]).await
    }
    async fn finish(&mut self) -> Result<()> {
        self.call("finish", &[]).await
    }
}
