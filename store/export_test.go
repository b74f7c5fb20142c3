package store

// ClusterStatements exposes the cluster translation of one migration
// statement to the tests.
var ClusterStatements = clusterStatements
