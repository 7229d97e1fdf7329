// Package v20170312 stands in for the Tencent Cloud VPC SDK, which the Go module proxy the lab
// builds from does not serve. flanneld links its tencentvpc backend unconditionally (main.go
// imports every backend); the lab uses the vxlan backend, so this package keeps the types that
// backend names and makes every API call fail with a message saying why. It is used only through a
// `replace` directive of the lab's toolchain build (test/lab/toolchain/build.sh, step flannel).
package v20170312

import "errors"

var errUnavailable = errors.New("tencentvpc backend unavailable: this flanneld was built without the Tencent Cloud VPC SDK (not served by the Go module proxy); use another backend")

type Filter struct {
	Name   *string
	Values []*string
}

type Route struct {
	DestinationCidrBlock *string
	GatewayType          *string
	GatewayId            *string
	RouteId              *uint64
	RouteDescription     *string
	Enabled              *bool
	RouteType            *string
	RouteTableId         *string
}

type RouteTable struct {
	VpcId          *string
	RouteTableId   *string
	RouteTableName *string
	RouteSet       []*Route
}

type DescribeRouteTablesRequest struct {
	Filters       []*Filter
	RouteTableIds []*string
}

type DescribeRouteTablesResponse struct {
	Response *struct {
		TotalCount    *uint64
		RouteTableSet []*RouteTable
		RequestId     *string
	}
}

type DeleteRoutesRequest struct {
	RouteTableId *string
	Routes       []*Route
}

type DeleteRoutesResponse struct{}

type CreateRoutesRequest struct {
	RouteTableId *string
	Routes       []*Route
}

type CreateRoutesResponse struct{}

type Client struct{}

func NewClientWithSecretId(secretId, secretKey, region string) (*Client, error) {
	return nil, errUnavailable
}

func NewDescribeRouteTablesRequest() *DescribeRouteTablesRequest {
	return &DescribeRouteTablesRequest{}
}
func NewDeleteRoutesRequest() *DeleteRoutesRequest { return &DeleteRoutesRequest{} }
func NewCreateRoutesRequest() *CreateRoutesRequest { return &CreateRoutesRequest{} }

func (c *Client) DescribeRouteTables(*DescribeRouteTablesRequest) (*DescribeRouteTablesResponse, error) {
	return nil, errUnavailable
}
func (c *Client) DeleteRoutes(*DeleteRoutesRequest) (*DeleteRoutesResponse, error) {
	return nil, errUnavailable
}
func (c *Client) CreateRoutes(*CreateRoutesRequest) (*CreateRoutesResponse, error) {
	return nil, errUnavailable
}
