//! The classic gRPC route guide, built from generated stubs: all four kinds of RPC, with a
//! blocking and an async server implementation and a blocking and an async client.
//!
//! `cargo run -p routeguide --bin routeguide-server -- --flavour async` serves it;
//! `cargo run -p routeguide --bin routeguide-client -- --addr 127.0.0.1:10000` calls it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use rsgrpc::{BlockingStreaming, Request, Response, ResponseSink, Status, Streaming};

/// Messages and stubs generated from `examples/proto/routeguide/route_guide.proto`.
pub mod routeguide {
    rsgrpc::include_proto!("routeguide");
}

use routeguide::{Feature, Point, Rectangle, RouteNote, RouteSummary};

/// The features the guide knows: a deterministic grid of named places.
pub fn features() -> Vec<Feature> {
    (0..10)
        .flat_map(|i| (0..10).map(move |j| (i, j)))
        .map(|(i, j)| Feature {
            name: format!("Feature {i}-{j}"),
            location: Some(Point {
                latitude: 400_000_000 + i * 1_000_000,
                longitude: -740_000_000 + j * 1_000_000,
            }),
        })
        .collect()
}

fn in_range(point: &Point, rect: &Rectangle) -> bool {
    let (lo, hi) = (rect.lo.unwrap_or_default(), rect.hi.unwrap_or_default());
    let (left, right) = (
        lo.longitude.min(hi.longitude),
        lo.longitude.max(hi.longitude),
    );
    let (bottom, top) = (lo.latitude.min(hi.latitude), lo.latitude.max(hi.latitude));
    (left..=right).contains(&point.longitude) && (bottom..=top).contains(&point.latitude)
}

/// Great-circle distance in metres between two E7 points (haversine).
fn distance(a: &Point, b: &Point) -> i32 {
    const COORD_FACTOR: f64 = 1e7;
    const EARTH_RADIUS_M: f64 = 6_371_000.0;
    let (lat1, lat2) = (
        (a.latitude as f64 / COORD_FACTOR).to_radians(),
        (b.latitude as f64 / COORD_FACTOR).to_radians(),
    );
    let d_lat = lat2 - lat1;
    let d_lon = ((b.longitude - a.longitude) as f64 / COORD_FACTOR).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
    (2.0 * EARTH_RADIUS_M * h.sqrt().atan2((1.0 - h).sqrt())) as i32
}

/// State shared by both server flavours.
#[derive(Default)]
pub struct Guide {
    features: Vec<Feature>,
    notes: Mutex<HashMap<Point, Vec<RouteNote>>>,
}

impl Guide {
    /// A guide knowing [`features`].
    pub fn new() -> Arc<Guide> {
        Arc::new(Guide {
            features: features(),
            notes: Mutex::default(),
        })
    }

    fn feature_at(&self, point: &Point) -> Feature {
        self.features
            .iter()
            .find(|f| f.location.as_ref() == Some(point))
            .cloned()
            .unwrap_or(Feature {
                name: String::new(),
                location: Some(*point),
            })
    }

    fn features_in(&self, rect: &Rectangle) -> Vec<Feature> {
        self.features
            .iter()
            .filter(|f| f.location.as_ref().is_some_and(|p| in_range(p, rect)))
            .cloned()
            .collect()
    }

    /// Records a note and returns the notes left earlier at its location.
    fn chat(&self, note: RouteNote) -> Vec<RouteNote> {
        let location = note.location.unwrap_or_default();
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        let earlier = notes.entry(location).or_default();
        let reply = earlier.clone();
        earlier.push(note);
        reply
    }
}

/// Folds a route's points into its summary.
struct RouteTracker {
    start: Instant,
    summary: RouteSummary,
    last: Option<Point>,
}

impl RouteTracker {
    fn new() -> Self {
        RouteTracker {
            start: Instant::now(),
            summary: RouteSummary::default(),
            last: None,
        }
    }

    fn add(&mut self, guide: &Guide, point: Point) {
        self.summary.point_count += 1;
        if !guide.feature_at(&point).name.is_empty() {
            self.summary.feature_count += 1;
        }
        if let Some(last) = &self.last {
            self.summary.distance += distance(last, &point);
        }
        self.last = Some(point);
    }

    fn finish(mut self) -> RouteSummary {
        self.summary.elapsed_time = self.start.elapsed().as_secs() as i32;
        self.summary
    }
}

/// The route guide as async handlers.
#[derive(Clone)]
pub struct AsyncGuide(pub Arc<Guide>);

impl routeguide::route_guide_server::RouteGuide for AsyncGuide {
    async fn get_feature(&self, request: Request<Point>) -> Result<Response<Feature>, Status> {
        Ok(Response::new(self.0.feature_at(request.get_ref())))
    }

    type ListFeaturesStream = rsgrpc::BoxStream<Feature>;

    async fn list_features(
        &self,
        request: Request<Rectangle>,
    ) -> Result<Response<Self::ListFeaturesStream>, Status> {
        let found = self.0.features_in(request.get_ref());
        Ok(Response::new(Box::pin(futures::stream::iter(
            found.into_iter().map(Ok),
        ))))
    }

    async fn record_route(
        &self,
        request: Request<Streaming<Point>>,
    ) -> Result<Response<RouteSummary>, Status> {
        let mut points = request.into_inner();
        let mut tracker = RouteTracker::new();
        while let Some(point) = points.message().await? {
            tracker.add(&self.0, point);
        }
        Ok(Response::new(tracker.finish()))
    }

    type RouteChatStream = rsgrpc::BoxStream<RouteNote>;

    async fn route_chat(
        &self,
        request: Request<Streaming<RouteNote>>,
    ) -> Result<Response<Self::RouteChatStream>, Status> {
        let guide = self.0.clone();
        let replies = request.into_inner().flat_map(move |note| {
            let replies: Vec<Result<RouteNote, Status>> = match note {
                Ok(note) => guide.chat(note).into_iter().map(Ok).collect(),
                Err(status) => vec![Err(status)],
            };
            futures::stream::iter(replies)
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

/// The route guide as blocking handlers.
#[derive(Clone)]
pub struct BlockingGuide(pub Arc<Guide>);

impl routeguide::route_guide_server::RouteGuideBlocking for BlockingGuide {
    fn get_feature(&self, request: Request<Point>) -> Result<Response<Feature>, Status> {
        Ok(Response::new(self.0.feature_at(request.get_ref())))
    }

    fn list_features(
        &self,
        request: Request<Rectangle>,
        mut responses: ResponseSink<Feature>,
    ) -> Result<(), Status> {
        for feature in self.0.features_in(request.get_ref()) {
            responses.send(feature)?;
        }
        Ok(())
    }

    fn record_route(
        &self,
        request: Request<BlockingStreaming<Point>>,
    ) -> Result<Response<RouteSummary>, Status> {
        let mut tracker = RouteTracker::new();
        for point in request.into_inner() {
            tracker.add(&self.0, point?);
        }
        Ok(Response::new(tracker.finish()))
    }

    fn route_chat(
        &self,
        request: Request<BlockingStreaming<RouteNote>>,
        mut responses: ResponseSink<RouteNote>,
    ) -> Result<(), Status> {
        for note in request.into_inner() {
            for earlier in self.0.chat(note?) {
                responses.send(earlier)?;
            }
        }
        Ok(())
    }
}

/// What a client run observed, for printing and for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Tour {
    /// The feature found at a known point.
    pub found: String,
    /// Whether a point without a feature came back unnamed.
    pub unnamed_elsewhere: bool,
    /// How many features the rectangle listed.
    pub listed: usize,
    /// The summary of the recorded route.
    pub summary: RouteSummary,
    /// How many earlier notes the chat sent back.
    pub chat_replies: usize,
}

fn known_point() -> Point {
    Point {
        latitude: 402_000_000,
        longitude: -737_000_000,
    }
}

fn nowhere() -> Point {
    Point {
        latitude: 0,
        longitude: 0,
    }
}

fn rectangle() -> Rectangle {
    Rectangle {
        lo: Some(Point {
            latitude: 400_000_000,
            longitude: -740_000_000,
        }),
        hi: Some(Point {
            latitude: 402_000_000,
            longitude: -738_000_000,
        }),
    }
}

fn route() -> Vec<Point> {
    features()
        .iter()
        .step_by(11)
        .filter_map(|f| f.location)
        .chain([nowhere()])
        .collect()
}

fn notes() -> Vec<RouteNote> {
    let at = |lat, lon| {
        Some(Point {
            latitude: lat,
            longitude: lon,
        })
    };
    vec![
        RouteNote {
            location: at(0, 1),
            message: "First message".into(),
        },
        RouteNote {
            location: at(0, 2),
            message: "Second message".into(),
        },
        RouteNote {
            location: at(0, 1),
            message: "Third message".into(),
        },
        RouteNote {
            location: at(0, 2),
            message: "Fourth message".into(),
        },
    ]
}

/// Takes the tour with the blocking client.
///
/// # Errors
///
/// The first call that fails.
pub fn tour_blocking(
    client: &routeguide::route_guide_client::RouteGuideBlockingClient,
) -> Result<Tour, Status> {
    let found = client.get_feature(known_point())?.into_inner().name;
    let unnamed_elsewhere = client.get_feature(nowhere())?.into_inner().name.is_empty();
    let listed = client
        .list_features(rectangle())?
        .into_inner()
        .collect::<Result<Vec<_>, _>>()?
        .len();
    let summary = client.record_route(route())?.into_inner();
    let (mut sender, replies) = client.route_chat()?;
    for note in notes() {
        sender.send(note)?;
    }
    sender.finish();
    let chat_replies = replies.collect::<Result<Vec<_>, _>>()?.len();
    Ok(Tour {
        found,
        unnamed_elsewhere,
        listed,
        summary,
        chat_replies,
    })
}

/// Takes the tour with the async client.
///
/// # Errors
///
/// The first call that fails.
pub async fn tour_async(
    client: &routeguide::route_guide_client::RouteGuideClient,
) -> Result<Tour, Status> {
    let found = client.get_feature(known_point()).await?.into_inner().name;
    let unnamed_elsewhere = client
        .get_feature(nowhere())
        .await?
        .into_inner()
        .name
        .is_empty();
    let mut features = client.list_features(rectangle()).await?.into_inner();
    let mut listed = 0;
    while features.message().await?.is_some() {
        listed += 1;
    }
    let summary = client
        .record_route(futures::stream::iter(route()))
        .await?
        .into_inner();
    let mut replies = client
        .route_chat(futures::stream::iter(notes()))
        .await?
        .into_inner();
    let mut chat_replies = 0;
    while replies.message().await?.is_some() {
        chat_replies += 1;
    }
    Ok(Tour {
        found,
        unnamed_elsewhere,
        listed,
        summary,
        chat_replies,
    })
}
