// The benchmark's echo server in gRPC C++ (callback API), serving test.Echo's unary and
// server-streaming methods as rsgrpc's and tonic's bench servers do: a unary echo, and
// `count` responses of `response_size` bytes each, every response built afresh.
//
// Usage: echo_server [--tls DIR]; prints `listening PORT` (a port chosen by the OS on
// 127.0.0.1) and serves until its stdin is closed. Built by `rsgrpc-bench server-cpu`
// when Debian's libgrpc++-dev, protobuf-compiler-grpc and g++ are present.

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include <grpcpp/grpcpp.h>

#include "echo/echo.grpc.pb.h"

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class Writer final : public grpc::ServerWriteReactor<test::EchoResponse> {
 public:
  explicit Writer(const test::EchoRequest* request) : request_(*request) { Next(); }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::UNKNOWN, "write failed"));
      return;
    }
    Next();
  }

  void OnDone() override { delete this; }

 private:
  void Next() {
    if (index_ >= request_.count()) {
      Finish(grpc::Status::OK);
      return;
    }
    response_.Clear();
    response_.set_message(request_.message() + ":" + std::to_string(index_));
    response_.set_index(index_);
    if (request_.response_size() > 0) {
      response_.set_payload(std::string(request_.response_size(), 'x'));
    } else {
      response_.set_payload(request_.payload());
    }
    index_++;
    StartWrite(&response_);
  }

  test::EchoRequest request_;
  test::EchoResponse response_;
  uint32_t index_ = 0;
};

class Echo final : public test::Echo::CallbackService {
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context,
                                  const test::EchoRequest* request,
                                  test::EchoResponse* response) override {
    response->set_message(request->message());
    response->set_payload(request->payload());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerWriteReactor<test::EchoResponse>* ServerStream(
      grpc::CallbackServerContext*, const test::EchoRequest* request) override {
    return new Writer(request);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  for (int i = 1; i + 1 < argc; i++) {
    if (std::string(argv[i]) == "--tls") {
      std::string dir = argv[i + 1];
      grpc::SslServerCredentialsOptions options;
      options.pem_key_cert_pairs.push_back(
          {ReadFile(dir + "/server.key"), ReadFile(dir + "/server.pem")});
      credentials = grpc::SslServerCredentials(options);
    }
  }
  Echo service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", credentials, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "cannot listen on 127.0.0.1" << std::endl;
    return 1;
  }
  std::cout << "listening " << port << std::endl;
  std::string ignored;
  while (std::getline(std::cin, ignored)) {
  }
  server->Shutdown();
  return 0;
}
