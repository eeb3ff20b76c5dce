//! The order read model in DynamoDB: one item per order, kept by the projector and
//! served by the API.
//!
//! An item holds the view's fields at the top level (what the API returns, readable
//! in the console), `version` (the last event folded in), `customerOrderKey`
//! (`<placedAt>#<orderId>`, the sort key of the `by-customer` index, newest first)
//! and `projection`: the projector's [`OrderProjection`] as JSON, tagged with the
//! order state's schema, so the next event is folded onto it without reading the
//! store. Every write is conditional on the stored version being lower, so a view
//! never goes backward, whichever writer (projector or rebuild) comes last.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use orderflow_app::StoreError;
use orderflow_app::read_model::{OrderViews, customer_order_key};
use orderflow_domain::order::Order;
use orderflow_domain::order::view::{OrderProjection, OrderView};
use orderflow_domain::personal::Sealed;
use orderflow_domain::{Aggregate, CustomerId, OrderId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The customer index's name.
pub const BY_CUSTOMER: &str = "by-customer";

/// Encodes a position in a list as an opaque, URL-safe cursor.
#[must_use]
pub fn encode_cursor<T: Serialize>(position: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

/// Decodes a cursor made by [`encode_cursor`]; `None` for anything else.
#[must_use]
pub fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub use orderflow_app::read_model::{CustomerCursor, CustomerPage, StoredView, Written};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemOut<'a> {
    #[serde(flatten)]
    view: &'a OrderView,
    customer_order_key: String,
    projection: String,
    projection_schema: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemIn {
    #[serde(flatten)]
    view: OrderView,
    #[serde(default)]
    projection: Option<String>,
    #[serde(default)]
    projection_schema: Option<u32>,
}

/// The order views table.
#[derive(Debug, Clone)]
pub struct DynamoOrderViews {
    client: Client,
    table: String,
}

impl DynamoOrderViews {
    /// The views in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    fn decode(item: HashMap<String, AttributeValue>) -> Result<StoredView, StoreError> {
        let item: ItemIn =
            serde_dynamo::from_item(item).map_err(|e| StoreError::new("decode order view", e))?;
        let projection = match (item.projection, item.projection_schema) {
            (Some(json), Some(schema)) if schema == Order::STATE_SCHEMA => serde_json::from_str(&json).ok(),
            _ => None,
        };
        Ok(StoredView {
            view: item.view,
            projection,
        })
    }

    /// The view of one order, read strongly consistently.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn get(&self, order_id: OrderId) -> Result<Option<StoredView>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("orderId", AttributeValue::S(order_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("get order view", e))?;
        output.item.map(Self::decode).transpose()
    }

    /// Writes the view of `projection` unless the table already holds that version
    /// or a later one. A projection of an order not placed yet writes nothing.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn put(&self, projection: &OrderProjection) -> Result<Written, StoreError> {
        let Some(view) = projection.view() else {
            return Ok(Written::AlreadyCurrent);
        };
        let item = serde_dynamo::to_item(ItemOut {
            view: &view,
            customer_order_key: customer_order_key(&view),
            projection: serde_json::to_string(projection)
                .map_err(|e| StoreError::new("encode projection", e))?,
            projection_schema: Order::STATE_SCHEMA,
        })
        .map_err(|e| StoreError::new("encode order view", e))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(orderId) OR #version < :version")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":version", AttributeValue::N(view.version.to_string()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Written::Updated),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Written::AlreadyCurrent)
            }
            Err(e) => Err(StoreError::new("put order view", e)),
        }
    }

    /// A page of `customer`'s orders, newest first, continuing after `after`.
    ///
    /// The cursor is the last key returned, so orders placed while a client pages
    /// (they sort first) never shift the pages it has not read yet.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn by_customer(
        &self,
        customer: &CustomerId,
        limit: u16,
        after: Option<&CustomerCursor>,
    ) -> Result<CustomerPage, StoreError> {
        let limit = usize::from(limit.max(1));
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_CUSTOMER)
            .key_condition_expression("customerId = :customer")
            .expression_attribute_values(":customer", AttributeValue::S(customer.to_string()))
            .scan_index_forward(false)
            // One more than asked: whether there is a next page, without an empty one.
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX));
        if let Some(after) = after {
            query = query.set_exclusive_start_key(Some(HashMap::from([
                (
                    "customerId".to_owned(),
                    AttributeValue::S(after.customer_id.clone()),
                ),
                (
                    "customerOrderKey".to_owned(),
                    AttributeValue::S(after.customer_order_key.clone()),
                ),
                ("orderId".to_owned(), AttributeValue::S(after.order_id.clone())),
            ])));
        }
        let output = query
            .send()
            .await
            .map_err(|e| StoreError::new("query a customer's orders", e))?;
        let orders = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| Self::decode(item).map(|s| s.view))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CustomerPage::of(customer, orders, limit))
    }

    /// Every view in the table (a paginated scan), for comparisons and checks.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn all(&self) -> Result<HashMap<OrderId, OrderView>, StoreError> {
        let mut views = HashMap::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| StoreError::new("scan order views", e))?;
            for item in output.items.unwrap_or_default() {
                let stored = Self::decode(item)?;
                views.insert(stored.view.order_id, stored.view);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(views);
            }
        }
    }

    /// Replaces one order's personal fields, in the view and in the projector's state,
    /// with the erased marker; whether it held any.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn erase_personal(&self, order_id: OrderId) -> Result<bool, StoreError> {
        self.rewrite_address(order_id, OrderView::erase_personal, |p| {
            p.erase_personal();
        })
        .await
    }

    /// Replaces one order's address held in clear, in the view and in the projector's
    /// state, with `sealed` (the history's migration); whether it was in clear.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn seal_personal(&self, order_id: OrderId, sealed: &Sealed) -> Result<bool, StoreError> {
        self.rewrite_address(
            order_id,
            |v| v.seal_personal(sealed),
            |p| {
                p.seal_personal(sealed);
            },
        )
        .await
    }

    /// Rewrites one order's address where `view` changes it, and the projector's
    /// state beside it with `projection`. The write is conditional on the version
    /// read, and read again when the projector moved the view meanwhile.
    async fn rewrite_address(
        &self,
        order_id: OrderId,
        view: impl Fn(&mut OrderView) -> bool,
        projection: impl Fn(&mut OrderProjection),
    ) -> Result<bool, StoreError> {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let Some(mut stored) = self.get(order_id).await? else {
                return Ok(false);
            };
            if !view(&mut stored.view) {
                return Ok(false);
            }
            let address = serde_dynamo::to_attribute_value(&stored.view.shipping_address)
                .map_err(|e| StoreError::new("encode an address", e))?;
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("orderId", AttributeValue::S(order_id.to_string()))
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_names("#address", "shippingAddress")
                .expression_attribute_names("#projection", "projection")
                .expression_attribute_values(":version", AttributeValue::N(stored.view.version.to_string()))
                .expression_attribute_values(":address", address);
            // A projector's state of another schema is dropped: the projector folds the
            // order from the store next time.
            update = match stored.projection.as_mut() {
                Some(state) => {
                    projection(state);
                    let json =
                        serde_json::to_string(state).map_err(|e| StoreError::new("encode projection", e))?;
                    update
                        .update_expression("SET #address = :address, #projection = :projection")
                        .expression_attribute_values(":projection", AttributeValue::S(json))
                }
                None => {
                    update.update_expression("SET #address = :address REMOVE #projection, projectionSchema")
                }
            };
            match update.send().await {
                Ok(_) => return Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(StoreError::new("rewrite an order view's address", e)),
            }
        }
        Err(StoreError::new(
            "rewrite an order view's address",
            format!("the view moved on {ATTEMPTS} times while it was rewritten"),
        ))
    }

    /// Deletes every item (a rebuild's fresh start); how many.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn clear(&self) -> Result<usize, StoreError> {
        let mut deleted = 0;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("orderId")
                .send()
                .await
                .map_err(|e| StoreError::new("scan order views", e))?;
            let items = output.items.unwrap_or_default();
            if items.is_empty() {
                return Ok(deleted);
            }
            for key in items {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .send()
                    .await
                    .map_err(|e| StoreError::new("delete order view", e))?;
                deleted += 1;
            }
        }
    }
}

impl OrderViews for DynamoOrderViews {
    async fn get(&self, order_id: OrderId) -> Result<Option<StoredView>, StoreError> {
        Self::get(self, order_id).await
    }

    async fn put(&self, projection: &OrderProjection) -> Result<Written, StoreError> {
        Self::put(self, projection).await
    }

    async fn by_customer(
        &self,
        customer: &CustomerId,
        limit: u16,
        after: Option<&CustomerCursor>,
    ) -> Result<CustomerPage, StoreError> {
        Self::by_customer(self, customer, limit, after).await
    }

    async fn erase_personal(&self, order_id: OrderId) -> Result<bool, StoreError> {
        Self::erase_personal(self, order_id).await
    }

    async fn all(&self) -> Result<HashMap<OrderId, OrderView>, StoreError> {
        Self::all(self).await
    }
}

/// The read model in memory: the DynamoDB table's twin for tests and the simulation,
/// with the same contract (a write never moves a view backward; a customer's orders
/// newest first, paged by the last key returned).
#[derive(Debug, Clone, Default)]
pub struct MemoryOrderViews {
    views: std::sync::Arc<std::sync::Mutex<HashMap<OrderId, (OrderView, OrderProjection)>>>,
}

impl MemoryOrderViews {
    /// An empty read model.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OrderId, (OrderView, OrderProjection)>> {
        self.views
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl OrderViews for MemoryOrderViews {
    async fn get(&self, order_id: OrderId) -> Result<Option<StoredView>, StoreError> {
        Ok(self.lock().get(&order_id).map(|(view, projection)| StoredView {
            view: view.clone(),
            projection: Some(projection.clone()),
        }))
    }

    async fn put(&self, projection: &OrderProjection) -> Result<Written, StoreError> {
        let Some(view) = projection.view() else {
            return Ok(Written::AlreadyCurrent);
        };
        let mut views = self.lock();
        if views
            .get(&view.order_id)
            .is_some_and(|(stored, _)| stored.version >= view.version)
        {
            return Ok(Written::AlreadyCurrent);
        }
        views.insert(view.order_id, (view, projection.clone()));
        Ok(Written::Updated)
    }

    async fn by_customer(
        &self,
        customer: &CustomerId,
        limit: u16,
        after: Option<&CustomerCursor>,
    ) -> Result<CustomerPage, StoreError> {
        let limit = usize::from(limit.max(1));
        let mut orders: Vec<OrderView> = self
            .lock()
            .values()
            .map(|(view, _)| view)
            .filter(|view| &view.customer_id == customer)
            .filter(|view| after.is_none_or(|a| customer_order_key(view) < a.customer_order_key))
            .cloned()
            .collect();
        orders.sort_by_key(|view| std::cmp::Reverse(customer_order_key(view)));
        Ok(CustomerPage::of(customer, orders, limit))
    }

    async fn erase_personal(&self, order_id: OrderId) -> Result<bool, StoreError> {
        Ok(self.lock().get_mut(&order_id).is_some_and(|(view, projection)| {
            projection.erase_personal();
            view.erase_personal()
        }))
    }

    async fn all(&self) -> Result<HashMap<OrderId, OrderView>, StoreError> {
        Ok(self
            .lock()
            .iter()
            .map(|(id, (view, _))| (*id, view.clone()))
            .collect())
    }
}
