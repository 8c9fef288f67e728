//! A `tower` layer for HTTP services (axum, or any `tower` service of `http` requests):
//! each request is a root span with OpenTelemetry's HTTP keys, from its arrival to the end of
//! its response body, and one line when it ends.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use ::axum::extract::{MatchedPath, OriginalUri};
use ::http::{HeaderName, HeaderValue, Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;

use crate::time::SharedReading;

/// The route of a request that axum gives no route template for: a path no route matched
/// (axum's fallback, a 404), or a path under a service mounted with `nest_service`, whose
/// template axum keeps to itself (a request for the mount path itself has that path as its
/// route). Never the raw path, which would make a metric dimension per URL.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The method of a request whose method is not one of HTTP's nine (nor one the layer was
/// given): OpenTelemetry's name for it. The method as sent is the span's
/// `http.request.method_original`.
pub const OTHER_METHOD: &str = "_OTHER";

/// The header a request's id is read from, and echoed in when asked.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The header an Application Load Balancer adds with the request's X-Ray trace.
const AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");
/// The status of a request whose response was never made: the client went first.
const CANCELLED: u16 = 499;
/// The target of the request's span and of its line.
const TARGET: &str = "tracing_aws_ecs::http";

/// A `tower` layer that makes each HTTP request a root span at INFO, named `request`, with
/// OpenTelemetry's HTTP keys, and writes one line when the request ends. With
/// [`RequestMetrics`](crate::RequestMetrics) on, every request is counted under its route.
///
/// The span's fields:
///
/// - `http.request.method`: `GET`, `POST`, …, or [`OTHER_METHOD`] for a method that is not
///   one of HTTP's nine (or one given to [`with_known_method`](Self::with_known_method)),
///   so that a client cannot make a metric dimension of its own; then also
///   `http.request.method_original`, the method as sent;
/// - `http.route`: the route template axum matched (`/orders/{id}`, from
///   [`MatchedPath`]), or [`UNMATCHED_ROUTE`] when axum gives none (a 404, a path under a
///   `nest_service`): never the raw path;
/// - `url.path`: the path as requested (with the prefix of a `Router::nest`, which axum takes
///   off the path the nested router sees);
/// - `request_id`: the `x-request-id` header when the request has one (1 to 128 visible
///   ASCII characters), else 32 random hex digits;
/// - `xray_trace_id`: the `Root` of the `X-Amzn-Trace-Id` header an Application Load
///   Balancer adds (`1-67891233-abcdef012345678912345678`), when there is one;
/// - `http.response.status_code`: recorded when the response is made.
///
/// Every line logged while the request is handled carries them. The request ends when its
/// response body ends (with the frame after which the body says it is at its end, as hyper
/// reads it; with the response itself when its body is empty) or is dropped (a streaming body
/// stays in its request); then one line, `request finished`, with `duration_ms`
/// (milliseconds, to the microsecond): at INFO, or at ERROR for a 5xx status, a service error
/// or a body that failed, so that [`Buffering`](crate::Buffering) writes what the request
/// held. A request whose response was never made (the client went, or a timeout outside
/// this layer gave up) gets status 499 and one INFO line, `request cancelled`: it is counted,
/// not as an error.
///
/// A panic in the handler or the body is the request's error, with status 500, and one ERROR
/// line: the [panic hook](crate::install_panic_hook)'s, in the request, whether
/// `tower_http::catch_panic::CatchPanicLayer` is inside this layer or outside it. (Without
/// the hook, this layer writes `request panicked` for a panic that unwinds through it.) A
/// panic caught inside writes its `request finished` line at INFO; one that unwinds through
/// the layer writes none.
///
/// Layers inside this one (added with `tower::ServiceBuilder`, or services of your own) run
/// in the request's span: what they log, and the spans they make (tower-http's
/// `TraceLayer`), are the request's. So is what the handler's future or the body logs as it
/// is dropped with a cancelled request. An id layer (tower-http's `SetRequestIdLayer`) goes
/// outside this one, applied after it, so that this layer reads the id it set. A task
/// spawned with `.in_current_span()` holds the span: its lines are the request's, while
/// request metrics count the request at its last line, timed as its `duration_ms` is.
///
/// A router nested in another, each with the layer, makes one request, the outer layer's:
/// a `RequestService` called while another's response future is polled on its thread (or
/// while another calls it: two layers stacked in a `ServiceBuilder`) passes the request
/// through.
///
/// Apply it with axum's `Router::layer`, after the routes, so that it sees the route each
/// request matched (a route added after it does not go through it: no span, no line). Where
/// no axum (0.8) `Router` has routed a request before it (the layer wraps the `Router`, or a
/// service served without one), it sees no route: the request has the route
/// [`UNMATCHED_ROUTE`], and the first such request of each layer writes one WARN that says
/// so. (A layer wrapped around a `Router` that another mounts, with `nest_service` or
/// `fallback_service`, is not told apart: the outer one has marked the request as routed.)
///
/// ```
/// use axum::{Router, routing::get};
/// use tracing_aws_ecs::http::RequestLayer;
///
/// let app: Router = Router::new()
///     .route("/orders/{id}", get(|| async { "order" }))
///     .route("/health", get(|| async { "ok" }))
///     .layer(RequestLayer::new().without_route("/health"));
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct RequestLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug, Default)]
struct Config {
    /// Routes (or paths, for unmatched requests) that are not requests: no span, a DEBUG line.
    skipped: Vec<String>,
    /// Whether the response carries the request's id as `x-request-id`.
    echo_request_id: bool,
    /// Methods counted under their own name besides HTTP's nine.
    known_methods: Vec<Method>,
    /// Whether the WARN about requests no `Router` routed was written.
    warned_unrouted: Flag,
    /// Whether the WARN about an id set inside the layer was written.
    warned_inner_id: Flag,
}

/// A flag a layer sets once; a layer configured from a copy of another starts with its own.
#[derive(Debug, Default)]
struct Flag(AtomicBool);

impl Clone for Flag {
    fn clone(&self) -> Self {
        Flag::default()
    }
}

impl RequestLayer {
    /// The layer: every route is a request, and the request id is not echoed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves out requests of `route`: health checks. `route` is a route template as axum
    /// reports it (with the prefix of a `Router::nest`: `/api/health` for a route `/health`
    /// nested under `/api`), or a path, as requested or as the router the layer is applied
    /// to sees it (`/health` there). They have no span, so they are not counted and their
    /// lines carry no request fields, and their `request finished` line is at DEBUG.
    pub fn without_route(mut self, route: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).skipped.push(route.into());
        self
    }

    /// Whether each response carries its request's id as `x-request-id` (default `false`).
    /// An `x-request-id` the response has already (a layer inside this one, such as
    /// tower-http's `PropagateRequestIdLayer`) is kept; when it is not the request's id, one
    /// WARN says so: an id layer belongs outside this one, where this layer reads the id
    /// it set.
    pub fn with_request_id_in_response(mut self, echo: bool) -> Self {
        Arc::make_mut(&mut self.config).echo_request_id = echo;
        self
    }

    /// Counts `method` under its own name (WebDAV's `PROPFIND`, say) rather than as
    /// [`OTHER_METHOD`]; HTTP's nine are known already.
    pub fn with_known_method(mut self, method: Method) -> Self {
        Arc::make_mut(&mut self.config).known_methods.push(method);
        self
    }
}

impl<S> Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestService {
            inner,
            config: Arc::clone(&self.config),
            call_makes_future_only: is_axum_route::<S>(),
        }
    }
}

/// The service [`RequestLayer`] wraps around another.
#[derive(Clone, Debug)]
pub struct RequestService<S> {
    inner: S,
    config: Arc<Config>,
    /// Whether the inner service's `call` only makes its future, running no code of the
    /// service (axum's `Route`): it need not run in the request's span.
    call_makes_future_only: bool,
}

/// Whether `S` is axum's `Route`, whose `call` makes the future of the route's service
/// without calling it: the route's layers and handler run as the future is polled, in the
/// request's span. Any other service's `call` runs in the span (an entry of it costs about
/// 25 ns a request); a name that reads otherwise in another Rust version only costs that.
fn is_axum_route<S>() -> bool {
    let name = std::any::type_name::<S>();
    // `Route<E = Infallible>`: its name leaves out the default parameter.
    name == "axum::routing::route::Route" || name.starts_with("axum::routing::route::Route<")
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if Polling::in_a_request() {
            // A router nested in another, each with the layer: the outer one has the request.
            return ResponseFuture {
                inner: Some(self.inner.call(request)),
                request: None,
                echoed: None,
                nested: true,
            };
        }
        // An axum `Router` marks each request it routes (a path it has no route for
        // included) with the path as requested; a nested router sees its path without the
        // prefix.
        let original = request.extensions().get::<OriginalUri>();
        let seen_path = request.uri().path();
        let path = original.map_or(seen_path, |original| original.path());
        let route = match request.extensions().get::<MatchedPath>() {
            Some(matched) => matched.as_str(),
            None => {
                // Not marked: no `Router` routed it on its way here.
                if original.is_none() {
                    self.config.warn_unrouted();
                }
                UNMATCHED_ROUTE
            }
        };
        // Request metrics time the span with this reading too (taken after the WARN above,
        // which is not the request's time).
        let reading = SharedReading::now();
        let started = reading.at();
        let skipped = self
            .config
            .skipped
            .iter()
            .any(|s| s == route || s == path || s == seen_path);
        let given_id = request
            .headers()
            .get(REQUEST_ID)
            .filter(|id| valid_request_id(id.as_bytes()))
            .and_then(|id| id.to_str().ok());
        // A left-out request has no span: an id is made only to be echoed.
        let needs_id = !skipped || self.config.echo_request_id;
        let generated = (given_id.is_none() && needs_id).then(random_id);
        let request_id = match (given_id, &generated) {
            (Some(id), _) => id,
            (None, Some(id)) => std::str::from_utf8(id).unwrap_or_default(),
            (None, None) => "",
        };
        let echoed = self
            .config
            .echo_request_id
            .then(|| HeaderValue::from_str(request_id).ok())
            .flatten()
            .map(|id| Echo {
                id,
                config: Arc::clone(&self.config),
            });
        let span = if skipped {
            Span::none()
        } else {
            let method = request.method();
            let span = if is_known_method(method, &self.config.known_methods) {
                request_span!(method.as_str(), route, path, request_id)
            } else {
                span_of_other_method(method.as_str(), route, path, request_id)
            };
            let trace = request.headers().get(AMZN_TRACE_ID);
            if let Some(root) = trace.and_then(|t| xray_root(t.to_str().ok()?)) {
                span.record("xray_trace_id", root);
            }
            span
        };
        drop(reading);
        // The handler runs as the future is polled, in the span; a service that does more
        // in its `call` (a layer inside this one, such as tower-http's `TraceLayer`, makes
        // its span there) does it in the span too.
        let inner = if self.call_makes_future_only {
            self.inner.call(request)
        } else {
            let _entered = span.enter();
            // Another `RequestService` inside (two layers in a `ServiceBuilder`) leaves the
            // request to this one, as a nested router's does.
            let _polling = Polling::start();
            self.inner.call(request)
        };
        ResponseFuture {
            inner: Some(inner),
            request: Some(OpenRequest {
                span,
                started,
                skipped,
                status: None,
                failed: false,
                caught_panic: false,
                panics: 0,
                in_poll: false,
                ended: false,
            }),
            echoed,
            nested: false,
        }
    }
}

/// A request's span (its fields: see [`RequestLayer`]), with `$method`, and the method as
/// sent when it is not known.
macro_rules! request_span {
    ($method:expr, $route:expr, $path:expr, $request_id:expr $(, $original:expr)?) => {
        tracing::info_span!(
            target: TARGET,
            parent: None,
            "request",
            http.request.method = $method,
            $(http.request.method_original = $original,)?
            http.route = $route,
            url.path = $path,
            request_id = $request_id,
            xray_trace_id = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        )
    };
}
use request_span;

/// The span of a request whose method is not known: a callsite of its own, with the method
/// as sent (a field declared for every request would take room in each span), out of
/// `call`'s way.
#[cold]
#[inline(never)]
fn span_of_other_method(original: &str, route: &str, path: &str, request_id: &str) -> Span {
    request_span!(OTHER_METHOD, route, path, request_id, original)
}

pin_project! {
    /// The future of a [`RequestService`]'s response.
    pub struct ResponseFuture<F> {
        // `None` only as the future is dropped: see the drop below.
        #[pin]
        inner: Option<F>,
        // Handed to the response's body when the response is made.
        request: Option<OpenRequest>,
        echoed: Option<Echo>,
        // Called while another `RequestService`'s request was polled: no request of its own.
        nested: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        /// A request cancelled before its response: what the inner future logs as it is
        /// dropped (a guard that says the client went) is in the request, before its last
        /// line.
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            drop_in_request(this.inner, this.request.as_ref());
        }
    }
}

/// Drops `inner` in `request`'s span, unless the request has ended: a field that is
/// dropped after it would be dropped outside it.
fn drop_in_request<T>(mut inner: Pin<&mut Option<T>>, request: Option<&OpenRequest>) {
    if let Some(request) = request.filter(|request| !request.ended) {
        let _entered = request.span.enter();
        inner.set(None);
    }
}

/// The id a response is to carry as `x-request-id`, and the layer's configuration, whose
/// flag says once that a layer inside set another.
struct Echo {
    id: HeaderValue,
    config: Arc<Config>,
}

impl Config {
    /// Says, once a layer, that its requests carry no route, as no axum `Router` routed them.
    // Out of `call`'s way: once a layer, or never.
    #[cold]
    #[inline(never)]
    fn warn_unrouted(&self) {
        if self.warned_unrouted.0.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(
            target: TARGET,
            "RequestLayer got a request no axum 0.8 Router routed before it: it sees no \
             route, so every such request has the route \"{UNMATCHED_ROUTE}\" (and request \
             metrics count them all under it); apply the layer with axum 0.8's Router::layer, \
             after the routes, not around the Router"
        );
    }

    /// Says, once a layer, that the response came with an `x-request-id` of its own, not the
    /// id the request's lines carry.
    #[cold]
    #[inline(never)]
    fn warn_id_set_inside(&self) {
        if self.warned_inner_id.0.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(
            target: TARGET,
            "a response came to RequestLayer with an x-request-id that is not the id its \
             request's lines carry (a layer inside RequestLayer, such as tower-http's \
             SetRequestIdLayer, or the handler, set it): apply id layers after RequestLayer, \
             outside it, so that it reads the id they set"
        );
    }
}

/// Whether the filter of the subscriber in use lets requests' spans through (`request`, of
/// this module's target, at INFO). When it does not (`RUST_LOG=my_service=debug` turns off
/// every other target), requests are neither logged nor counted, and their lines carry no
/// request fields.
pub(crate) fn request_spans_enabled() -> bool {
    use tracing::callsite::Callsite;
    use tracing::metadata::{Kind, Metadata};
    struct RequestSpan;
    static CALLSITE: RequestSpan = RequestSpan;
    static META: Metadata<'static> = tracing::metadata! {
        name: "request",
        target: TARGET,
        level: tracing::Level::INFO,
        // The span's own, for directives that name fields (`[request{http.route}]=info`).
        fields: &[
            "http.request.method",
            "http.route",
            "url.path",
            "request_id",
            "xray_trace_id",
            "http.response.status_code",
        ],
        callsite: &CALLSITE,
        kind: Kind::SPAN,
    };
    impl Callsite for RequestSpan {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            &META
        }
    }
    // Registered, so that a filter's directives by span name see it as they would the span.
    tracing::callsite::register(&CALLSITE);
    tracing::dispatcher::get_default(|dispatch| dispatch.enabled(&META))
}

/// Whether `event` is a request's last line (`request finished`, `request cancelled`), which
/// request metrics count the request at: of this module's target, as the reading of the
/// request's end is taken (a line another layer logs meanwhile is not).
pub(crate) fn ends_its_request(event: &tracing::Event<'_>) -> bool {
    event.metadata().target() == TARGET && crate::time::request_ends_here()
}

/// Whether `method` is one of HTTP's nine (RFC 9110's eight and `PATCH`) or one of `known`.
fn is_known_method(method: &Method, known: &[Method]) -> bool {
    const NINE: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    NINE.contains(method) || known.contains(method)
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            panic!("a RequestService's response future polled as it was dropped");
        };
        if *this.nested {
            return inner.poll(cx).map_ok(|response| {
                response.map(|inner| ResponseBody {
                    inner: Some(inner),
                    request: None,
                })
            });
        }
        let Some(request) = this.request.as_mut() else {
            panic!("a RequestService's response future polled after it was ready");
        };
        let polled = request.poll_in_span(
            Part::Response,
            || inner.poll(cx),
            |polled| match polled {
                Poll::Pending => Polled::default(),
                Poll::Ready(Ok(response)) => Polled {
                    status: Some(response.status().as_u16()),
                    // A body with nothing to send (a 204, an empty body) ends the request
                    // with its response.
                    ends: response.body().is_end_stream().then_some(false),
                },
                Poll::Ready(Err(_)) => Polled {
                    status: None,
                    ends: Some(true),
                },
            },
        );
        let result = match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        // Ended already: its line is written and its span closed.
        let request = this.request.take().filter(|request| !request.ended);
        Poll::Ready(result.map(|response| {
            let (mut parts, body) = response.into_parts();
            if let Some(Echo { id, config }) = this.echoed.take() {
                // Unless the handler (or a layer inside) set one of its own.
                match parts.headers.entry(REQUEST_ID) {
                    ::http::header::Entry::Vacant(entry) => {
                        entry.insert(id);
                    }
                    ::http::header::Entry::Occupied(set) if *set.get() != id => {
                        config.warn_id_set_inside();
                    }
                    ::http::header::Entry::Occupied(_) => {}
                }
            }
            let body = ResponseBody {
                inner: Some(body),
                request,
            };
            Response::from_parts(parts, body)
        }))
    }
}

pin_project! {
    /// The body of a [`RequestService`]'s response: the request ends when it ends or is
    /// dropped.
    pub struct ResponseBody<B> {
        // `None` only as the body is dropped.
        #[pin]
        inner: Option<B>,
        request: Option<OpenRequest>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        /// A body dropped before its end (the client went): what it logs as it is dropped
        /// is in the request, before its last line.
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            drop_in_request(this.inner, this.request.as_ref());
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let Some(mut inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(None);
        };
        // A streaming body's lines are the request's; so is its last line, when the body
        // ends (or fails), written in the same entry of the span.
        let Some(request) = this.request.as_mut() else {
            return inner.poll_frame(cx);
        };
        // A frame after which the body says it is at its end ends the request too: a
        // server need not poll again (hyper does not), and the last line is written in this
        // entry of the span rather than another.
        let poll = || {
            let frame = inner.as_mut().poll_frame(cx);
            let at_end = matches!(frame, Poll::Ready(Some(Ok(_)))) && inner.is_end_stream();
            (frame, at_end)
        };
        let ends = |(frame, at_end): &(Poll<Option<Result<_, _>>>, bool)| Polled {
            status: None,
            ends: match frame {
                Poll::Ready(None) => Some(false),
                Poll::Ready(Some(Err(_))) => Some(true),
                _ => at_end.then_some(false),
            },
        };
        let (frame, _) = request.poll_in_span(Part::Body, poll, ends);
        if request.ended {
            drop(this.request.take());
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(B::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), B::size_hint)
    }
}

thread_local! {
    /// Whether a request's response future is being polled on this thread, by a
    /// [`RequestService`].
    static POLLING: Cell<bool> = const { Cell::new(false) };
}

/// A request's response future being polled on this thread: a [`RequestService`] called
/// meanwhile (a router nested in another, each with the layer) leaves the request to the
/// outer one, so that a request is one span, one line and one count. Undone as it is
/// dropped, a panic included.
struct Polling(bool);

impl Polling {
    fn start() -> Self {
        Polling(
            POLLING
                .try_with(|polling| polling.replace(true))
                .unwrap_or(false),
        )
    }

    fn in_a_request() -> bool {
        POLLING.try_with(Cell::get).unwrap_or(false)
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        let _ = POLLING.try_with(|polling| polling.set(self.0));
    }
}

/// What of a request is polled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The future of its response.
    Response,
    /// Its response's body.
    Body,
}

/// What a poll of a request's future or body gave: a response, with its status; the end of
/// the request (`Some(failed)`).
#[derive(Default)]
struct Polled {
    status: Option<u16>,
    ends: Option<bool>,
}

/// A request in flight: its span, and what its line says when it ends, as this is dropped.
struct OpenRequest {
    span: Span,
    started: Instant,
    skipped: bool,
    status: Option<u16>,
    /// The service returned an error, or the body failed.
    failed: bool,
    /// A panic was caught inside (its line is written).
    caught_panic: bool,
    /// [`panics_on_this_thread`](crate::panic::panics_on_this_thread) when the last poll
    /// began.
    panics: u64,
    /// Whether the inner future or body is being polled: still so at the drop when a panic
    /// unwound out of it.
    in_poll: bool,
    /// Whether its last line is written (in the body's last poll).
    ended: bool,
}

impl OpenRequest {
    /// Runs `poll` (the inner future's or body's, as `part` says) in the request's span. A
    /// panic that unwinds out of it leaves `in_poll` set for the drop to see. Then `seen`
    /// tells what was polled: a response's status is recorded (with whether a panic was
    /// caught inside the poll: `CatchPanicLayer` there, its line written already), and a
    /// request that ends there has its last line written in the same entry of the span: one
    /// entry fewer a request.
    fn poll_in_span<T>(
        &mut self,
        part: Part,
        poll: impl FnOnce() -> T,
        seen: impl FnOnce(&T) -> Polled,
    ) -> T {
        self.in_poll = true;
        self.panics = crate::panic::panics_on_this_thread();
        let entered = self.span.enter();
        // Services are called (a nested router's) as the response's future is polled, not
        // as its body is.
        let polling = (part == Part::Response).then(Polling::start);
        let polled = poll();
        drop(polling);
        self.in_poll = false;
        let Polled { status, ends } = seen(&polled);
        if let Some(status) = status {
            self.status = Some(status);
            self.caught_panic = crate::panic::panics_on_this_thread() != self.panics;
            self.span.record("http.response.status_code", status);
        }
        if let Some(failed) = ends {
            self.failed |= failed;
            // Written once, even if writing it panics.
            self.ended = true;
            let reading = self.write_end();
            drop(entered);
            self.close(reading);
        }
        polled
    }

    /// The request's last line; the caller has entered its span. With the clock reading its
    /// `duration_ms` was measured with, for the caller to [`close`](Self::close) the span.
    fn write_end(&self) -> Option<SharedReading> {
        if self.in_poll {
            // A panic unwound out of the handler (`CatchPanicLayer` outside, or none): the
            // request failed with a 500, and the hook's line, in the request, says why.
            self.span.record("http.response.status_code", 500u16);
            if crate::panic::panics_on_this_thread() == self.panics {
                tracing::error!(target: TARGET, "request panicked");
            }
            return None;
        }
        let reading = SharedReading::at_the_end();
        let elapsed = reading.at().saturating_duration_since(self.started);
        let duration_ms = crate::time::millis_to_the_microsecond(elapsed);
        let server_error = self.status.is_some_and(|s| s >= 500);
        if self.status.is_none() && !self.failed {
            // No response was made: the client went (or a timeout outside gave up). Not the
            // service's error: 499, as nginx names it.
            self.span.record("http.response.status_code", CANCELLED);
            if self.skipped {
                tracing::debug!(target: TARGET, duration_ms, "request cancelled");
            } else {
                tracing::info!(target: TARGET, duration_ms, "request cancelled");
            }
        } else if self.skipped {
            tracing::debug!(target: TARGET, duration_ms, "request finished");
        } else if self.caught_panic {
            // The panic's line is the request's ERROR.
            tracing::info!(target: TARGET, duration_ms, "request finished");
        } else if self.failed || server_error {
            tracing::error!(target: TARGET, duration_ms, "request finished");
        } else {
            tracing::info!(target: TARGET, duration_ms, "request finished");
        }
        Some(reading)
    }

    /// Closes the request's span, unless the service keeps a clone of it: request metrics
    /// time its close with `reading`, forgotten after.
    fn close(&mut self, reading: Option<SharedReading>) {
        drop(std::mem::replace(&mut self.span, Span::none()));
        drop(reading);
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        let reading = if self.ended {
            None
        } else {
            let _entered = self.span.enter();
            self.write_end()
        };
        self.close(reading);
    }
}

/// Resolves when the task is told to stop: `SIGTERM` (what ECS sends, then `SIGKILL` after
/// the container's stop timeout, 30 s by default) or Ctrl-C; one INFO line says which. For
/// axum's graceful shutdown: the server stops taking connections, the requests in flight
/// finish, `main` returns, and the [`FlushGuard`](crate::FlushGuard) writes the last
/// interval of request metrics, what requests held, and a last container report.
///
/// ```no_run
/// # async fn serve(app: axum::Router, listener: tokio::net::TcpListener) -> std::io::Result<()> {
/// axum::serve(listener, app)
///     .with_graceful_shutdown(tracing_aws_ecs::http::shutdown_signal())
///     .await
/// # }
/// ```
///
/// Needs a tokio runtime with its I/O driver (as `#[tokio::main]` makes). Where a signal
/// cannot be listened for, one WARN says so and only the other one stops the service.
pub async fn shutdown_signal() {
    let mut ctrl_c = std::pin::pin!(async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(target: TARGET, "cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
        "Ctrl-C"
    });
    let mut terminate = std::pin::pin!(terminated());
    let signal = std::future::poll_fn(|cx| {
        if let Poll::Ready(name) = terminate.as_mut().poll(cx) {
            return Poll::Ready(name);
        }
        ctrl_c.as_mut().poll(cx)
    })
    .await;
    tracing::info!(
        target: TARGET,
        signal,
        "shutting down: finishing the requests in flight"
    );
}

/// Resolves on `SIGTERM`.
#[cfg(unix)]
async fn terminated() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            sigterm.recv().await;
        }
        Err(e) => {
            tracing::warn!(target: TARGET, "cannot listen for SIGTERM: {e}");
            std::future::pending::<()>().await;
        }
    }
    "SIGTERM"
}

/// Never: there is no `SIGTERM` here.
#[cfg(not(unix))]
async fn terminated() -> &'static str {
    std::future::pending().await
}

/// Whether a request's `x-request-id` is taken as its id: 1 to 128 visible ASCII characters.
fn valid_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

/// 32 random lowercase hex digits.
fn random_id() -> [u8; 32] {
    let mut id = [0; 32];
    for half in id.chunks_exact_mut(16) {
        half.copy_from_slice(&crate::json::hex_word(crate::time::random_u64()));
    }
    id
}

/// The `Root` of an `X-Amzn-Trace-Id` header (`Root=1-67891233-abcdef012345678912345678;
/// Parent=…;Sampled=1`), when it is an X-Ray trace id.
fn xray_root(header: &str) -> Option<&str> {
    let root = header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))?;
    let bytes = root.as_bytes();
    let hex = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_hexdigit);
    let shaped = bytes.len() == 35
        && bytes.starts_with(b"1-")
        && bytes[10] == b'-'
        && hex(2..10)
        && hex(11..35);
    shaped.then_some(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xray_roots_are_read_from_the_header() {
        let root = "1-67891233-abcdef012345678912345678";
        assert_eq!(xray_root(&format!("Root={root}")), Some(root));
        assert_eq!(
            xray_root(&format!(
                "Self=1-67891234-12456789abcdef012345678;Root={root};Sampled=1"
            )),
            Some(root)
        );
        assert_eq!(
            xray_root(&format!(" Root={root} ; Parent=53995c3f42cd8ad8")),
            Some(root)
        );
        assert_eq!(xray_root("Root=1-6789123-abcdef012345678912345678"), None);
        assert_eq!(xray_root("Root=1-67891233-abcdef01234567891234567z"), None);
        assert_eq!(xray_root("Sampled=1"), None);
        assert_eq!(xray_root("Root=é"), None);
    }

    #[test]
    fn axum_routes_are_told_from_other_services() {
        // A `Route`'s call runs none of the service's code: no entry of the span for it. Any
        // other service's call runs in the span.
        assert!(is_axum_route::<::axum::routing::Route>());
        assert!(is_axum_route::<::axum::routing::Route<std::io::Error>>());
        assert!(!is_axum_route::<RequestService<::axum::routing::Route>>());
        assert!(!is_axum_route::<()>());
    }

    #[test]
    fn methods_are_known_or_other() {
        assert!(is_known_method(&Method::PATCH, &[]));
        let propfind = Method::from_bytes(b"PROPFIND").unwrap();
        assert!(!is_known_method(&propfind, &[]));
        assert!(is_known_method(&propfind, std::slice::from_ref(&propfind)));
    }

    #[test]
    fn request_ids_are_visible_ascii_or_generated() {
        assert!(valid_request_id(b"4f9c1e2a-77b1"));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"a b"));
        assert!(!valid_request_id(&[b'x'; 129]));
        let (a, b) = (random_id(), random_id());
        assert_ne!(a, b);
        assert!(
            a.iter()
                .all(|d| d.is_ascii_hexdigit() && !d.is_ascii_uppercase())
        );
    }
}
